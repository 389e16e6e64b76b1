"""Shared fixtures: Apache Kafka, a fresh PostgreSQL database per run, event logs."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from kibitz.adapters.eventlog_kafka import KafkaEventLog
from kibitz.adapters.eventlog_sqlite import SqliteEventLog
from kibitz.ports import EventLog
from kibitz.runtime.cluster import LocalBroker
from kibitz.runtime.kafka import start_kafka
from tests.fakes.lichess import FakeLichess


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """How `./dev.sh test` spreads the suite over its worker processes (`--dist loadgroup`):

    - tests sharing a module-scoped fixture (one `kibitz serve`, one browser) form one group,
      so that the fixture starts once, on one worker;
    - tests marked `slow(seconds)` start first, longest first, each on a worker of its own
      (xdist hands every worker its next test before the current one ends: a short test
      goes behind each of the first ones), so that they overlap the rest of the suite
      instead of ending it.
    """
    for item in items:
        fixtures = getattr(item, "_fixtureinfo", None)
        defs = fixtures.name2fixturedefs.values() if fixtures else []
        if any(d[-1].scope == "module" for d in defs):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))  # type: ignore[attr-defined]
    if getattr(config.option, "loadgroup", False):  # in a worker of `--dist loadgroup`
        _name_groups(items)

    def seconds(item: pytest.Item) -> float:
        mark = item.get_closest_marker("slow")
        return float(mark.args[0]) if mark else 0.0

    slow = sorted((i for i in items if seconds(i)), key=seconds, reverse=True)
    rest = [i for i in items if not seconds(i)]
    workers = config.getoption("numprocesses", None)
    n = workers if isinstance(workers, int) and workers > 0 else 1
    quick = [i for i in rest if ".unit." in i.module.__name__][:n]  # type: ignore[attr-defined]
    rest = [i for i in rest if i not in quick]
    items[:] = slow[:n] + quick + slow[n:] + rest


def _name_groups(items: list[pytest.Item]) -> None:
    """Put each test's group into its node id ("…@group"), which is what xdist's scheduler
    groups by. xdist 3.8 writes it into `item._nodeid`, which pytest 9 no longer reads (its
    node id lives in `item._id`): without this, every group was spread over the workers and a
    module's `kibitz serve` started once per worker."""
    from _pytest.nodeid import coerce_node_id

    for item in items:
        names = sorted({str(m.args[0]) for m in item.iter_markers("xdist_group") if m.args})
        if names and "@" not in item.nodeid:
            item._id = coerce_node_id(f"{item.nodeid}@{'_'.join(names)}")  # type: ignore[attr-defined]


PG_ADMIN_URL = os.environ.get(
    "KIBITZ_TEST_PG", "postgresql://kibitz:kibitz@127.0.0.1:5432/postgres"
)


RUN_DIR = "KIBITZ_TEST_RUN_DIR"  # shared by the run's processes (xdist workers inherit it)


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get(RUN_DIR):  # the first process of the run (xdist's controller)
        os.environ[RUN_DIR] = tempfile.mkdtemp(prefix="kibitz-run-")


def pytest_unconfigure(config: pytest.Config) -> None:
    """The run's last act, in its first process: stop the shared broker, if one started."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    run = Path(os.environ.pop(RUN_DIR, "") or "/nonexistent")
    state = run / "broker.json"
    if state.exists():
        pid = int(json.loads(state.read_text())["pid"])
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # a test broker: its log is thrown away with it
    shutil.rmtree(run, ignore_errors=True)


@pytest.fixture(scope="session")
def broker() -> str:
    """Bootstrap address of Apache Kafka: KIBITZ_TEST_KAFKA, or one broker for the whole run,
    started by the first worker that needs it (the others wait on a lock, then use it) and
    stopped when the run ends."""
    given = os.environ.get("KIBITZ_TEST_KAFKA")
    if given:
        return given
    run = Path(os.environ[RUN_DIR])
    with (run / "broker.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = run / "broker.json"
        if not state.exists():
            local: LocalBroker = start_kafka(run / "broker")
            state.write_text(json.dumps({"pid": local.process.pid, "bootstrap": local.bootstrap}))
        return str(json.loads(state.read_text())["bootstrap"])


def drop_database(name: str, attempts: int = 5) -> None:
    """DROP DATABASE … WITH (FORCE), which ends the connections still open to it. Ending one
    can be refused for a moment (a backend of another role, autovacuum): try a few times."""
    for attempt in range(1, attempts + 1):
        try:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except psycopg.Error:
            if attempt == attempts:
                raise
            time.sleep(0.2 * attempt)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database created for this test run and dropped after it."""
    name = f"kibitz_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    finally:
        drop_database(name)


def make_sqlite_log(path: Path) -> SqliteEventLog:
    return SqliteEventLog(path, session_timeout_ms=1500, poll_interval=0.02)


def make_kafka_log(bootstrap: str) -> KafkaEventLog:
    return KafkaEventLog(
        [bootstrap],
        client_id=f"test-{uuid.uuid4().hex[:6]}",
        # 6 s, not the product's 10 (a killed member's partitions move on sooner), nor 2: under
        # the suite's load a member missed 2 s of heartbeats, was expelled and rejoined again
        # and again, and two members never split a topic within 30 s.
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )


@pytest.fixture(params=["sqlite", "kafka"])
async def event_log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventLog]:
    """The event log port, once per adapter: the contract suite runs on both."""
    log: EventLog
    if request.param == "sqlite":
        log = make_sqlite_log(tmp_path / "log.db")
    else:
        log = make_kafka_log(request.getfixturevalue("broker"))
    await log.start()
    try:
        yield log
    finally:
        await log.close()


@pytest.fixture
def topic() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """A PostgreSQL database for one test, dropped after it."""
    name = f"kibitz_t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store's URL, once per adapter."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'kibitz.db'}"
    return str(request.getfixturevalue("fresh_pg_url"))


@pytest.fixture
def fake_lichess() -> Iterator[FakeLichess]:
    fake = FakeLichess().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[str]:
    """An Apache Kafka for one test: whole-app tests use fixed topic names, so they must not
    share one (KIBITZ_TEST_KAFKA, when set, serves the contract suite)."""
    local = start_kafka(tmp_path / "own-broker")
    try:
        yield local.bootstrap
    finally:
        local.process.kill()  # its log is thrown away with it: no clean shutdown to wait for
        local.process.wait()
