"""Ingest throughput: Lichess NDJSON → stored games/s, on SQLite and on PostgreSQL.

Each figure is the median of interleaved rounds (the machine has 2 cores, shared with
PostgreSQL; single runs vary by about ±0.07x). Baseline, in the same run: python-chess
replaying the same games' moves from the same NDJSON lines with no storage at all.
Target (issue 3): pipeline >= 0.5x the baseline.
The pipeline is the real one: fake Lichess (HTTP, NDJSON) → ingest → games.raw (embedded log)
→ store service → games table, timed from the sync request to the last game stored.

    .venv/bin/python bench/ingest.py [--games 2000] [--rounds 5] [--pg postgresql://…/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import chess
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.lichess import FakeLichess  # noqa: E402

from kibitz.read.games import get_sync  # noqa: E402
from kibitz.runtime.bootstrap import bootstrap  # noqa: E402
from kibitz.services.ingest import request_sync  # noqa: E402
from kibitz.settings import load_settings  # noqa: E402


def replay_baseline(lines: list[str]) -> float:
    started = time.perf_counter()
    for line in lines:
        game = json.loads(line)
        board = chess.Board()
        for san in game["moves"].split():
            board.push_san(san)
    return len(lines) / (time.perf_counter() - started)


class RemoteFake:
    """The fake Lichess in its own process, as the real one is on another machine."""

    def __init__(self, user: str, games: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.lichess", user, str(games)],
            stdout=subprocess.PIPE,
            cwd=ROOT,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.process.stdout.readline())}"

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


async def pipeline(fake: RemoteFake, user: str, database_url: str, home: Path) -> float:
    settings = load_settings(
        home=home,
        database_url=database_url,
        bus_url=f"sqlite:///{home / 'log.db'}",
        lichess_url=fake.url,
        demo=False,
    )
    container = bootstrap(settings)
    await container.start(["ingest", "store"])
    try:
        started = time.perf_counter()
        sync_id = await request_sync(container.ctx, user)
        while True:
            view = await container.sql.read(lambda s: get_sync(s, sync_id))
            if view["status"] in ("done", "failed"):
                break
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        assert view["status"] == "done", view
        return int(view["games_stored"]) / elapsed
    finally:
        await container.close()


async def main(games: int, pg_admin: str, rounds: int) -> None:
    same_games = FakeLichess()  # deterministic: the same games the served fake streams
    same_games.add_user("bench", games)
    lines = [json.dumps(g) for g in same_games.users["bench"]]
    plies = statistics.mean(len(g["moves"].split()) for g in same_games.users["bench"])
    fake = RemoteFake("bench", games)
    results: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
    baselines = []
    pg_url = pg_admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # Interleaved rounds: whatever else loads the machine weighs on all three alike.
            for n in range(rounds):
                baselines.append(replay_baseline(lines))
                results["sqlite"].append(
                    await pipeline(
                        fake, "bench", f"sqlite:///{Path(tmp) / f'k{n}.db'}", Path(tmp) / f"a{n}"
                    )
                )
                name = f"kibitz_bench_{uuid.uuid4().hex[:8]}"
                with psycopg.connect(pg_admin, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                try:
                    results["postgresql"].append(
                        await pipeline(fake, "bench", f"{pg_url}/{name}", Path(tmp) / f"b{n}")
                    )
                finally:
                    with psycopg.connect(pg_admin, autocommit=True) as conn:
                        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        fake.stop()
    baseline = statistics.median(baselines)
    print(f"games: {games}, mean plies per game: {plies:.0f}, rounds: {rounds} (medians reported)")
    print(
        f"python-chess replay, no storage : {baseline:8.0f} games/s "
        f"(range {min(baselines):.0f}-{max(baselines):.0f})"
    )
    for store, rates in results.items():
        rate = statistics.median(rates)
        print(
            f"pipeline on {store:<10}          : {rate:8.0f} games/s = "
            f"{rate / baseline:.2f}x (target >= 0.5x; runs "
            f"{', '.join(f'{r / baseline:.2f}x' for r in rates)})"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--games", type=int, default=2000)
    parser.add_argument("--pg", default="postgresql://kibitz:kibitz@127.0.0.1:5432/postgres")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.games, args.pg, args.rounds))
