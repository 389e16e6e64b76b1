"""Property-based tests of the HTTP API from its own OpenAPI document (schemathesis): whatever
a client sends that the schema allows, the answer is never a server error (5xx) and its status
is one the document names. Runs against a real `kibitz serve` with a bounded number of
examples per operation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import Server, start_server, stop_server
from tests.fakes.lichess import FakeLichess

if TYPE_CHECKING:
    import schemathesis


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    fake = FakeLichess()
    fake.add_user("Alice", 3)
    fake.start()
    server = start_server(
        tmp_path_factory.mktemp("schema"),
        {
            "KIBITZ_LICHESS_URL": fake.url,
            "KIBITZ_QUICK_NODES": "2000",
            "KIBITZ_DEEP_NODES": "5000",
            "KIBITZ_INTERACTIVE_DEEP_NODES": "5000",
            "KIBITZ_PROBLEM_NODES": "20000",
            "KIBITZ_TRACK_WAIT": "1",
            "KIBITZ_DEMO": "false",  # the demo's analysis would only compete for the CPU
        },
    )
    try:
        yield server
    finally:
        stop_server(server)
        fake.stop()


def test_no_input_the_schema_allows_gets_a_server_error(api_server: Server) -> None:
    # Imported here: every worker collects this module, one runs the test.
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(f"{api_server.url}/openapi.json")
    # Server-Sent Events streams never end: nothing to call and wait for.
    schema = schema.exclude(path_regex=r".*/events$")
    failures: list[str] = []
    calls: list[int] = []
    tried = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        documented = set(operation.definition.raw["responses"])

        @settings(
            max_examples=25,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def call(case: schemathesis.Case) -> None:
            response = case.call(timeout=30)
            calls.append(response.status_code)
            # Called at once, in this iteration: `documented` is this operation's.
            assert str(response.status_code) in documented, (  # noqa: B023
                f"{case.method} {case.formatted_path} -> {response.status_code}, "
                f"not in the OpenAPI document"
            )
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} -> {response.status_code}: "
                f"{response.text[:300]}"
            )
            if response.status_code >= 400:  # errors are JSON with a message
                found = {k.lower(): v for k, v in response.headers.items()}.get("content-type")
                ctype = found[0] if isinstance(found, list) else str(found)
                assert ctype.startswith("application/json"), (case.formatted_path, ctype)

        try:
            call()
        except AssertionError as exc:
            failures.append(str(exc).splitlines()[0])
        tried += 1
    assert tried >= 30, f"only {tried} operations in the schema"
    assert not failures, "\n".join(failures)
    assert len(calls) > 3 * tried and any(c < 300 for c in calls) and any(c >= 400 for c in calls)
