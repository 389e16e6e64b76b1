"""Analysis throughput against the number of analysis worker processes, distributed.

For N = 1, 2, 4: `kibitz up --distributed --analysis-workers N` (each worker one Stockfish
process, `KIBITZ_ENGINES=1`) on a fresh PostgreSQL database and the local Kafka-protocol
broker; the same games (the fake Lichess server's generated games for one player, imported
first, not timed) requested in the batch lane, timed until the last is done. Positions per
second = the searches made (quick and deep pass of every position) / that time. Baseline, same
run: N bare Stockfish processes (python-chess) searching the same number of positions at the
same budgets, the ceiling of N workers on this machine. The curve is reported against the
machine's cores.

    .venv/bin/python bench/scale.py [--games 40] [--quick 5000] [--deep 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import chess
import chess.engine
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import net  # noqa: E402
from tests.fakes.lichess import FakeLichess  # noqa: E402

from kibitz.runtime.cluster import free_port  # noqa: E402
from kibitz.settings import load_settings  # noqa: E402

PG_ADMIN = os.environ.get("KIBITZ_TEST_PG", "postgresql://kibitz:kibitz@127.0.0.1:5432/postgres")
KIBITZ = str(Path(sys.executable).parent / "kibitz")


def pipeline(
    workers: int, games: int, quick: int, deep: int, fake: FakeLichess
) -> tuple[float, int]:
    """(seconds to analyse every game, positions searched) with `workers` worker processes."""
    name = f"kibitz_scale_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    home = Path(tempfile.mkdtemp(prefix="kibitz-scale-"))
    port = free_port()
    env = {
        **os.environ,
        "KIBITZ_HOME": str(home),
        "KIBITZ_DATABASE_URL": url.replace("postgresql://", "postgresql+psycopg://"),
        "KIBITZ_LICHESS_URL": fake.url,
        "KIBITZ_ENGINES": "1",
        "KIBITZ_QUICK_NODES": str(quick),
        "KIBITZ_DEEP_NODES": str(deep),
        "KIBITZ_EVAL_CACHE": "false",
        "KIBITZ_API_TOKEN": "",
    }
    up = subprocess.run(
        [KIBITZ, "up", "--distributed", "--analysis-workers", str(workers), "--port", str(port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    api = f"http://127.0.0.1:{port}/api"
    try:
        sync = net.post(f"{api}/players/Scale/sync", json={}).json()["id"]
        while net.get(f"{api}/syncs/{sync}").json()["status"] != "done":
            time.sleep(0.3)
        began = time.perf_counter()
        queued = net.post(f"{api}/players/Scale/analysis", json={"priority": "batch"}).json()
        assert queued["queued"] == games, queued
        with psycopg.connect(url, autocommit=True) as conn:
            while True:
                row = conn.execute("SELECT count(*) FROM analyses WHERE status='done'").fetchone()
                if row and row[0] >= games:
                    break
                time.sleep(0.2)
            seconds = time.perf_counter() - began
            row = conn.execute("SELECT sum(ply_count + 1) FROM games").fetchone()
        positions = 2 * int(row[0] if row else 0)
        return seconds, positions
    finally:
        subprocess.run([KIBITZ, "down"], env=env, capture_output=True, timeout=120)
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def bare(workers: int, boards: list[chess.Board], quick: int, deep: int) -> float:
    """N bare Stockfish processes over the same positions, both budgets."""
    path = load_settings(demo=False).stockfish_path()
    assert path, "no Stockfish"
    queue: asyncio.Queue[tuple[chess.Board, int]] = asyncio.Queue()
    for board in boards:
        queue.put_nowait((board, quick))
        queue.put_nowait((board, deep))

    async def worker() -> None:
        _, engine = await chess.engine.popen_uci(path)
        await engine.configure({"Threads": 1, "Hash": 32})
        try:
            while not queue.empty():
                board, nodes = queue.get_nowait()
                if not board.is_game_over():
                    await engine.analyse(board, chess.engine.Limit(nodes=nodes))
        finally:
            await engine.quit()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--games", type=int, default=40)
    parser.add_argument("--quick", type=int, default=5000)
    parser.add_argument("--deep", type=int, default=20000)
    args = parser.parse_args()
    fake = FakeLichess()
    games = fake.add_user("Scale", args.games, seed=11)
    fake.start()
    boards = []
    for game in games:
        board = chess.Board()
        boards.append(board.copy())
        for san in game["moves"].split():
            board.push_san(san)
            boards.append(board.copy())
    print(
        f"{args.games} games, {len(boards)} positions, quick {args.quick} / deep {args.deep} "
        f"nodes; {os.cpu_count()} cores"
    )
    first = None
    try:
        for workers in (1, 2, 4):
            seconds, positions = pipeline(workers, args.games, args.quick, args.deep, fake)
            floor = asyncio.run(bare(workers, boards, args.quick, args.deep))
            rate = positions / seconds
            ceiling = len(boards) * 2 / floor
            first = first or rate
            print(
                f"{workers} worker(s): {rate:7.1f} positions/s ({seconds:.1f} s)  "
                f"x{rate / first:.2f} of 1 worker; bare {workers} Stockfish {ceiling:7.1f} "
                f"positions/s -> {rate / ceiling:.2f}x of bare"
            )
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
