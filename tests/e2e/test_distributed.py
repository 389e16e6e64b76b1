"""Distributed mode: each service its own process on the Kafka-protocol broker and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests import net
from tests.e2e.conftest import KIBITZ, start_server, stop_server
from tests.fakes.lichess import FakeLichess

pytestmark = pytest.mark.kafka


@pytest.fixture
def cluster_env(tmp_path: Path, own_broker: str, fresh_pg_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "KIBITZ_HOME": str(tmp_path / "home"),
        "KIBITZ_BUS_URL": f"kafka://{own_broker}",
        "KIBITZ_DATABASE_URL": fresh_pg_url,
        "COLUMNS": "200",
    }


@pytest.fixture
def services(
    tmp_path: Path, cluster_env: dict[str, str], fake_lichess: FakeLichess
) -> Iterator[None]:
    env = {**cluster_env, "KIBITZ_LICHESS_URL": fake_lichess.url}
    subprocess.run([KIBITZ, "db", "upgrade"], env=env, check=True, capture_output=True)
    processes = [
        subprocess.Popen(
            [KIBITZ, "run", name],
            env=env,
            stdout=(tmp_path / f"{name}-{i}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for i, name in enumerate(["ingest", "ingest", "store"])
    ]
    try:
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.mark.slow(15)
def test_two_ingest_processes_and_a_store_process_import_without_overlapping_lichess_calls(
    cluster_env: dict[str, str], fake_lichess: FakeLichess, services: None
) -> None:
    fake_lichess.add_user("Alice", 60, seed=1)
    fake_lichess.add_user("Bob", 40, seed=2)
    fake_lichess.line_delay = 0.005
    env = {**cluster_env, "KIBITZ_LICHESS_URL": fake_lichess.url}
    imports = [
        subprocess.Popen(
            [KIBITZ, "import", "lichess", name],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("Alice", "Bob")
    ]
    outputs = [p.communicate(timeout=180) for p in imports]
    for process, (_out, err) in zip(imports, outputs, strict=True):
        assert process.returncode == 0, err
    assert "60 games stored (60 new, 0 rejected) for Alice" in outputs[0][0]
    assert "40 games stored (40 new, 0 rejected) for Bob" in outputs[1][0]
    assert fake_lichess.max_active == 1
    assert len(fake_lichess.requests) == 2
    url = env["KIBITZ_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT id) FROM games").fetchone() == (
            100,
            100,
        )


def test_health_names_the_failing_component_with_503(tmp_path: Path) -> None:
    running = start_server(tmp_path, {"KIBITZ_DEMO": "false"})
    stop_server(running)
    env = {
        **os.environ,
        "KIBITZ_HOME": str(running.home),
        "KIBITZ_PORT": running.url.rsplit(":", 1)[1],
        "KIBITZ_STOCKFISH": "/nonexistent/stockfish",
        "KIBITZ_DEMO": "false",
    }
    process = subprocess.Popen(
        [KIBITZ, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        # A loaded machine may take a while to start the server: a generous deadline.
        deadline = time.monotonic() + 60
        answer = None
        while time.monotonic() < deadline:
            try:
                answer = net.get(f"{running.url}/api/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert answer is not None and answer.status_code == 503
        body = answer.json()
        assert body["status"] == "degraded"
        assert body["components"]["engine"].startswith("down:")
        assert body["components"]["store"] == "ok"
    finally:
        process.terminate()
        process.wait(15)


def test_serve_and_run_started_before_their_broker_say_so_then_work_once_it_starts(
    tmp_path: Path, fresh_pg_url: str
) -> None:
    """Seed 003's non-blocking start: `kibitz serve --api-only` and `kibitz run store` come up
    without their broker, report the bus down (503 on /api/health and on the service's
    /health), then connect and do their work once Apache Kafka starts, without a restart."""
    from kibitz.runtime.cluster import free_port
    from kibitz.runtime.kafka import start_kafka

    kafka_port, metrics = free_port(), free_port()
    env = {
        "KIBITZ_BUS_URL": f"kafka://127.0.0.1:{kafka_port}",  # nothing listens there yet
        "KIBITZ_DATABASE_URL": fresh_pg_url,
        "KIBITZ_DEMO": "false",
    }
    port = free_port()
    full_env = {**os.environ, **env, "KIBITZ_HOME": str(tmp_path / "home")}
    api = subprocess.Popen(
        [KIBITZ, "serve", "--api-only", "--port", str(port)],
        env=full_env,
        stdout=(tmp_path / "serve.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    store = subprocess.Popen(
        [KIBITZ, "run", "store", "--metrics-port", str(metrics)],
        env=full_env,
        stdout=(tmp_path / "store.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    broker = None

    def answer(address: str) -> httpx.Response | None:
        try:
            return net.get(address, timeout=5)
        except httpx.TransportError:
            return None

    def waited_for(
        address: str, status: int, saying: str = "", deadline: float = 90
    ) -> httpx.Response:
        """The first answer of `address` with `status` (and `saying` in its body)."""
        began = time.monotonic()
        while time.monotonic() - began < deadline:
            got = answer(address)
            if got is not None and got.status_code == status and saying in got.text:
                return got
            assert api.poll() is None and store.poll() is None, "a process exited"
            time.sleep(0.2)
        raise AssertionError(f"{address} did not answer {status} {saying} within {deadline}s")

    try:
        down = waited_for(f"{url}/api/health", 503, "cannot reach the event log").json()
        assert down["components"]["bus"].startswith("down")
        assert down["components"]["store"] == "ok"
        refused = net.get(f"{url}/api/players/nobody/games", timeout=5)
        assert refused.status_code == 503 and "waiting for" in refused.json()["detail"]
        service = waited_for(
            f"http://127.0.0.1:{metrics}/health", 503, "cannot reach the event log"
        ).json()
        assert service["status"] == "degraded" and service["service"] == "store"

        broker = start_kafka(tmp_path / "broker", port=kafka_port)
        up = time.monotonic()
        assert waited_for(f"{url}/api/health", 200).json()["status"] == "ok"
        assert waited_for(f"http://127.0.0.1:{metrics}/health", 200).json()["status"] == "ok"
        took = time.monotonic() - up
        # And they work: an upload through the API is stored by the store process.
        pgn = (Path(__file__).parents[1] / "fixtures" / "lichess_study_chapter.pgn").read_bytes()
        sent = net.post(f"{url}/api/imports/pgn", files={"file": ("g.pgn", pgn)}, timeout=30).json()
        began = time.monotonic()
        while (view := net.get(f"{url}/api/syncs/{sent['id']}", timeout=10).json())[
            "status"
        ] != "done":
            assert time.monotonic() - began < 60, view
            time.sleep(0.2)
        assert view["games_stored"] == 1, view
        print(f"healthy {took:.1f}s after the broker listened")
    finally:
        for process in (api, store):
            process.terminate()
        for process in (api, store):
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        if broker is not None:
            broker.process.kill()
