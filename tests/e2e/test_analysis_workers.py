"""Two analysis worker processes on Kafka + PostgreSQL; one is SIGKILLed mid-batch."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from kibitz.domain.analysis import BUILTIN_PLUGINS
from tests import net
from tests.e2e.conftest import KIBITZ
from tests.fakes.lichess import FakeLichess

pytestmark = pytest.mark.kafka


@pytest.fixture
def cluster(
    tmp_path: Path, own_broker: str, fresh_pg_url: str, fake_lichess: FakeLichess
) -> Iterator[tuple[dict[str, str], dict[str, subprocess.Popen[bytes]]]]:
    env = {
        **os.environ,
        "KIBITZ_HOME": str(tmp_path / "home"),
        "KIBITZ_BUS_URL": f"kafka://{own_broker}",
        "KIBITZ_DATABASE_URL": fresh_pg_url,
        "KIBITZ_LICHESS_URL": fake_lichess.url,
        "KIBITZ_ENGINES": "1",
        "KIBITZ_QUICK_NODES": "1000",
        "KIBITZ_DEEP_NODES": "4000",
        "KIBITZ_INTERACTIVE_DEEP_NODES": "4000",
        "KIBITZ_PROBLEM_NODES": "2000",  # puzzles are not under test: keep their search small
        "KIBITZ_ANALYSIS_LEASE": "4",  # the killed worker's games move on after 4 s, not 20
        "COLUMNS": "200",
    }
    subprocess.run([KIBITZ, "db", "upgrade"], env=env, check=True, capture_output=True)
    names = ["ingest", "store", "analysis-a", "analysis-b"]
    processes = {
        name: subprocess.Popen(
            [KIBITZ, "run", name.split("-")[0]],
            env=env,
            stdout=(tmp_path / f"{name}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for name in names
    }
    try:
        yield env, processes
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        for process in processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.mark.slow(35)
def test_a_worker_killed_mid_batch_leaves_every_game_done_with_one_result_per_plugin(
    cluster: tuple[dict[str, str], dict[str, subprocess.Popen[bytes]]],
    fake_lichess: FakeLichess,
) -> None:
    env, processes = cluster
    fake_lichess.add_user("Alice", 20, seed=21)
    imported = subprocess.run(
        [KIBITZ, "import", "lichess", "Alice"], env=env, capture_output=True, text=True, timeout=180
    )
    assert imported.returncode == 0, imported.stderr
    queued = subprocess.run(
        [KIBITZ, "analyze", "--player", "Alice"], env=env, capture_output=True, text=True
    )
    assert queued.returncode == 0, queued.stderr
    assert "20 games queued in the batch lane" in queued.stdout
    url = env["KIBITZ_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    victim = processes["analysis-a"]

    def status_counts(conn: psycopg.Connection) -> dict[str, int]:
        rows = conn.execute("SELECT status, count(*) FROM analyses GROUP BY status").fetchall()
        return {str(s): int(n) for s, n in rows}

    with psycopg.connect(url, autocommit=True) as conn:
        # Kill the worker while it holds a game's lease, after some games are done.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            held = conn.execute(
                "SELECT count(*) FROM analyses WHERE status = 'running' AND lease_owner LIKE %s",
                (f"%:{victim.pid}:%",),
            ).fetchone()
            if status_counts(conn).get("done", 0) >= 2 and held and held[0] > 0:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"worker a never held a lease: {status_counts(conn)}")
        taken = conn.execute(
            "SELECT game_id FROM analyses WHERE status = 'running' AND lease_owner LIKE %s",
            (f"%:{victim.pid}:%",),
        ).fetchall()
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)

        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and status_counts(conn).get("done", 0) < 20:
            time.sleep(0.5)
        assert status_counts(conn) == {"done": 20}
        per_game = conn.execute(
            "SELECT g.id, g.ply_count, "
            "(SELECT count(*) FROM plugin_results r WHERE r.game_id = g.id), "
            "(SELECT count(DISTINCT (r.plugin, r.version)) FROM plugin_results r "
            " WHERE r.game_id = g.id), "
            "(SELECT count(*) FROM move_evals e WHERE e.game_id = g.id AND e.phase = 'deep') "
            "FROM games g"
        ).fetchall()
        attempts = dict(
            conn.execute(
                "SELECT game_id, attempts FROM analyses WHERE game_id = ANY(%s)",
                ([t[0] for t in taken],),
            ).fetchall()
        )
    assert len(per_game) == 20
    for game_id, plies, results, distinct, deep_evals in per_game:
        assert results == distinct == len(BUILTIN_PLUGINS), game_id
        assert deep_evals == plies, game_id
    # The games the killed worker held were taken over by the other one.
    assert attempts and all(n >= 2 for n in attempts.values())
    assert processes["analysis-b"].poll() is None


@pytest.mark.slow(180)
def test_chaos_200_games_3_workers_5_kills_and_a_30s_broker_outage(
    tmp_path: Path, fresh_pg_url: str, fake_lichess: FakeLichess
) -> None:
    """The services analysis needs, each its own process (`kibitz up --distributed --services
    ingest,store,scheduler,analysis`: the others would only add load) on PostgreSQL and Apache
    Kafka (its log on disk: it outlives the broker process): 200 games imported from the fake
    Lichess and analysed by 3 workers while a random worker is SIGKILLed and restarted five
    times and the broker is stopped for 30 s and started again. Every game ends analysed once
    per plugin version, with one evaluation per ply and phase; nothing is left queued,
    running, unconsumed or parked."""
    import random

    from kibitz.runtime.cluster import free_port, restart, running_cluster

    # Short games (10-30 plies): the searches are not under test, the processes are.
    fake_lichess.add_user("Chaos", 200, seed=5, plies=(10, 30))
    port = free_port()
    env = {
        **os.environ,
        "KIBITZ_HOME": str(tmp_path / "home"),
        "KIBITZ_DATABASE_URL": fresh_pg_url,
        "KIBITZ_LICHESS_URL": fake_lichess.url,
        "KIBITZ_ENGINES": "1",
        "KIBITZ_QUICK_NODES": "300",  # the engine is not under test: the processes are
        "KIBITZ_DEEP_NODES": "700",
        "KIBITZ_INTERACTIVE_DEEP_NODES": "700",
        "KIBITZ_PROBLEM_NODES": "2000",  # puzzles are not under test: keep their search small
        "KIBITZ_ANALYSIS_LEASE": "4",  # a killed worker's games move on after 4 s, not 20
        "KIBITZ_EVAL_CACHE": "false",
        "KIBITZ_API_TOKEN": "",
        "COLUMNS": "200",
    }
    home = tmp_path / "home"
    up = subprocess.run(
        [
            *(KIBITZ, "up", "--distributed", "--analysis-workers", "3", "--port", str(port)),
            *("--services", "ingest,store,scheduler,analysis"),  # what analysis needs
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    url = f"http://127.0.0.1:{port}"
    db = fresh_pg_url.replace("postgresql+psycopg://", "postgresql://")
    try:
        sync = net.post(f"{url}/api/players/Chaos/sync", json={}).json()["id"]
        deadline = time.monotonic() + 240
        while net.get(f"{url}/api/syncs/{sync}").json()["status"] != "done":
            assert time.monotonic() < deadline, "the import did not finish"
            time.sleep(0.5)
        queued = net.post(f"{url}/api/players/Chaos/analysis", json={"priority": "batch"}).json()
        assert queued["queued"] == 200, queued

        def done() -> int:
            with psycopg.connect(db, autocommit=True) as conn:
                row = conn.execute("SELECT count(*) FROM analyses WHERE status='done'").fetchone()
            return int(row[0]) if row else 0

        def committed() -> dict[str, int]:
            ops = net.get(f"{url}/api/ops", timeout=30).json()
            return {g["group"]: g["committed"] for g in ops["groups"]}

        rng = random.Random(8)
        broker = next(p for p in running_cluster(home) if p.name == "broker")
        deadline = time.monotonic() + 600
        for kill in range(5):
            while done() < 20 * (kill + 1):
                assert time.monotonic() < deadline, f"stuck at {done()} analysed, kill {kill}"
                time.sleep(0.3)
            restart(home, f"analysis-{rng.randint(1, 3)}", env)
            if kill == 2:  # the broker stopped for 30 s, then started again on the same log
                before = committed()
                restarted = restart(home, "broker", env, stop_signal=signal.SIGTERM, down_for=30)
                assert restarted.pid != broker.pid
        deadline = time.monotonic() + 420
        while done() < 200:
            assert time.monotonic() < deadline, f"only {done()} of 200 analysed"
            time.sleep(1)
        with psycopg.connect(db, autocommit=True) as conn:
            statuses = dict(
                conn.execute("SELECT status, count(*) FROM analyses GROUP BY status").fetchall()
            )
            per_game = conn.execute(
                "SELECT g.id, g.ply_count, "
                "(SELECT count(*) FROM plugin_results r WHERE r.game_id = g.id), "
                "(SELECT count(*) FROM move_evals e WHERE e.game_id = g.id AND e.phase='quick'), "
                "(SELECT count(*) FROM move_evals e WHERE e.game_id = g.id AND e.phase='deep') "
                "FROM games g"
            ).fetchall()
        assert statuses == {"done": 200}
        assert len(per_game) == 200
        for game_id, plies, results, quick, deep in per_game:
            assert results == len(BUILTIN_PLUGINS), game_id
            assert quick == deep == plies, game_id
        ops = net.get(f"{url}/api/ops", timeout=30).json()
        lag = {g["group"]: g["lag"] for g in ops["groups"]}
        deadline = time.monotonic() + 60
        while lag["kibitz.analysis"] or lag["kibitz.store"]:  # everything consumed, in the end
            assert time.monotonic() < deadline, lag
            time.sleep(1)
            ops = net.get(f"{url}/api/ops", timeout=30).json()
            lag = {g["group"]: g["lag"] for g in ops["groups"]}
        assert all(q["parked"] == 0 for q in ops["dlq"]), ops["dlq"]
        # The restarted broker kept its log and the groups' offsets: none went back.
        after = committed()
        assert all(after[group] >= n for group, n in before.items()), (before, after)
        assert after["kibitz.analysis"] > before["kibitz.analysis"] > 0, (before, after)
    finally:
        subprocess.run([KIBITZ, "down"], env=env, capture_output=True, timeout=120)
    assert running_cluster(home) == []
