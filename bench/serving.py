"""Serving over HTTP on PostgreSQL: puzzles, games and analyses at 50 clients (issue 21).

The API (`kibitz serve --api-only` on PostgreSQL: 3,000 puzzles and one real game, analysed)
and the load generator (Debian's `wrk`, `apt-get install wrk`) share the machine. Each round:

- baseline: a bare psycopg loop (asyncio, one connection per client) running kibitz's own
  serving statement (`repo_problems._pg_serving`, the same parameters) for the same time at
  the same concurrency;
- kibitz: `wrk` on `GET /api/problems/random` (each request serves one puzzle), then on
  `GET /api/problems/{id}`, `GET /api/games/{id}` and `GET /api/games/{id}/analysis`.

Printed per round and as medians: requests/s, p50 and p99, and random / bare. Afterwards,
least-recently-served holds if the 3,000 serve counts differ by at most one (every serve took a
puzzle served fewest times); the exact N x 5 check is `test_store_contract.py`'s.

    .venv/bin/python bench/serving.py [--clients 50] [--seconds 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.analysis import real_games_pgn  # noqa: E402
from bench.problems import import_and_analyse, seed_pg, start_api_only  # noqa: E402

from kibitz.adapters.repo_problems import SERVE_CANDIDATES, _pg_serving  # noqa: E402
from kibitz.settings import load_settings  # noqa: E402

PUZZLES = 3000
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, clients: int, seconds: int) -> dict[str, float]:
    """requests/s, p50 and p99 (ms) of `wrk` on `url`; fails on any non-2xx answer."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{clients}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw errors on {url}:\n{out}")

    def latency(label: str) -> float:
        found = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not found:
            raise SystemExit(f"no {label} latency in wrk's output:\n{out}")
        return float(found.group(1)) * UNITS[found.group(2)]

    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not rate:
        raise SystemExit(f"no rate in wrk's output:\n{out}")
    return {"rate": float(rate.group(1)), "p50": latency("50%"), "p99": latency("99%")}


async def bare(url: str, clients: int, seconds: int, count_up_to: int) -> dict[str, float]:
    """kibitz's serving statement in a bare asyncio psycopg loop, one connection a client."""
    serve, _ = _pg_serving(False, False, False)
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    async def client() -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            while time.monotonic() < stop:
                params = {
                    "player": None,
                    "theme": None,
                    "low": 0.0,
                    "high": 0.0,
                    "now": datetime.now(UTC),
                    "candidates": SERVE_CANDIDATES,
                    "count_up_to": count_up_to + 1,
                }
                began = time.perf_counter()
                await (await conn.execute(serve.sql, serve.params(params))).fetchone()
                latencies.append((time.perf_counter() - began) * 1000)

    began = time.monotonic()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.monotonic() - began
    latencies.sort()
    return {
        "rate": len(latencies) / elapsed,
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[int(len(latencies) * 0.99)],
    }


def spread(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT min(served_count), max(served_count) FROM problems").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench/serving.py needs wrk: apt-get install wrk", file=sys.stderr)
        raise SystemExit(2)

    url = seed_pg(PUZZLES)  # postgresql+psycopg://…, 3,000 never-served puzzles
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    # The game is imported and analysed by an embedded kibitz in a home of its own.
    settings = load_settings(
        home=Path(tempfile.mkdtemp(prefix="kibitz-bench-import-")),
        database_url=url,
        demo=False,
        quick_nodes=2000,
        deep_nodes=5000,
    )
    _, games = asyncio.run(import_and_analyse(settings, real_games_pgn().split("\n\n\n")[0], "g"))
    game = games[0]
    paths = {
        "problems/random": "/api/problems/random",
        "problems/{id}": "/api/problems/b00001-1",
        "games/{id}": f"/api/games/{game}",
        "games/{id}/analysis": f"/api/games/{game}/analysis",
    }
    # Ready when a puzzle is served, not by /api/health: an API-only process reports the
    # services of the import above as gone (they ran once on this store, none runs now).
    process, base = start_api_only(url, ready=paths["problems/{id}"])
    count_up_to = load_settings(demo=False).problems_min_unserved
    results: dict[str, list[dict[str, float]]] = {name: [] for name in ["bare", *paths]}
    try:
        for path in paths.values():  # warm: connections, prepared statements, caches
            wrk(base + path, args.clients, 2)
        for n in range(1, args.rounds + 1):
            results["bare"].append(
                asyncio.run(bare(plain, args.clients, args.seconds, count_up_to))
            )
            for name, path in paths.items():
                results[name].append(wrk(base + path, args.clients, args.seconds))
            line = ", ".join(
                f"{name} {r[-1]['rate']:.0f}/s p99 {r[-1]['p99']:.0f} ms"
                for name, r in results.items()
            )
            ratio = results["problems/random"][-1]["rate"] / results["bare"][-1]["rate"]
            print(f"round {n}: {line}; random / bare {ratio:.2f}", flush=True)
    finally:
        process.terminate()
        process.wait(15)
    low, high = spread(plain)
    print(f"\nmedians of {args.rounds} rounds, {args.clients} clients, {args.seconds} s each:")
    for name, rounds in results.items():
        med = {k: statistics.median(r[k] for r in rounds) for k in ("rate", "p50", "p99")}
        rate, p50, p99 = med["rate"], med["p50"], med["p99"]
        print(f"  {name:22} {rate:7.0f} req/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms")
    ratios = [
        k["rate"] / b["rate"]
        for k, b in zip(results["problems/random"], results["bare"], strict=True)
    ]
    each = ", ".join(f"{r:.2f}" for r in ratios)
    print(f"  random / bare: {statistics.median(ratios):.2f} (rounds {each})")
    holds = high - low <= 1
    print(f"  serve counts of the {PUZZLES} puzzles: {low}..{high} (least served first: {holds})")


if __name__ == "__main__":
    main()
