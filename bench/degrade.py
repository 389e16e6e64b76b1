"""Graceful degradation under load (issue 21): a batch backlog, then 20 interactive requests at
once, on the embedded kibitz with 2 engines.

Each interactive request is timed from the request to its start on an engine (the wait) and
its deep budget read back from the store: while requests wait longer than `--degrade-after`,
new interactive deep passes run at the batch budget (`degraded`); once a request starts within
half of that again, the full interactive budget returns. After the burst and the backlog have
drained, one more interactive request shows the budget restored. The baseline is the same
burst on a kibitz that never degrades (`--degrade-after 0`): how long the 20 requests take
with and without degradation is the figure that matters to users.

    .venv/bin/python bench/degrade.py [--games 20] [--backlog 30] [--degrade-after 4]

Budgets are scaled down from the defaults (20,000 + 1,000,000 interactive, 300,000 batch) by
`--scale` (default 0.2) so that a run takes minutes, not an hour; the ratios are the same.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.analysis import import_games, random_game_pgn, start

from kibitz.adapters.store_models import Analysis
from kibitz.runtime import metrics
from kibitz.services.analysis import request_analysis


def random_games(count: int, plies: int, seed: int) -> str:
    """`count` different games of `plies` random legal moves, as one PGN text."""
    return "\n\n".join(random_game_pgn(plies, seed=seed + n) for n in range(count))


async def rows(container: Any, ids: list[str]) -> dict[str, Any]:
    """Each game's analysis row (status, times, budget, degraded), read in one session."""

    def read(session: Any) -> dict[str, Any]:
        query = select(Analysis).where(Analysis.game_id.in_(ids))
        return {
            r.game_id: SimpleNamespace(
                status=r.status,
                requested_at=r.requested_at,
                started_at=r.started_at,
                deep_nodes=r.deep_nodes,
                degraded=r.degraded,
            )
            for r in session.scalars(query)
        }

    return dict(await container.sql.read(read))


async def burst(args: argparse.Namespace, degrade_after: float) -> dict[str, Any]:
    scale = args.scale
    budgets = {
        "quick_nodes": int(20_000 * scale),
        "deep_nodes": int(300_000 * scale),
        "interactive_deep_nodes": int(1_000_000 * scale),
    }
    with tempfile.TemporaryDirectory() as tmp:
        container = await start(
            Path(tmp), engines=2, degrade_after=degrade_after, eval_cache=False, **budgets
        )
        try:
            ids = await import_games(
                container, random_games(args.backlog + args.games + 1, args.plies, seed=7)
            )
            ids.sort()
            backlog, urgent, last = ids[: args.backlog], ids[args.backlog : -1], ids[-1]
            for game_id in backlog:
                await request_analysis(container.ctx, game_id, "batch")
            await asyncio.sleep(2.0)  # the backlog is being worked on
            degraded_before = metrics.ANALYSES_DEGRADED._value.get()
            began = time.monotonic()
            for game_id in urgent:
                await request_analysis(container.ctx, game_id, "interactive")
            while True:
                found = await rows(container, urgent)
                if all(r.status == "done" for r in found.values()) and len(found) == len(urgent):
                    break
                await asyncio.sleep(0.1)
            burst_seconds = time.monotonic() - began
            while True:  # the backlog drains
                if all(r.status == "done" for r in (await rows(container, backlog)).values()):
                    break
                await asyncio.sleep(0.2)
            await request_analysis(container.ctx, last, "interactive")
            while (await rows(container, [last])).get(last) is None or (
                await rows(container, [last])
            )[last].status != "done":
                await asyncio.sleep(0.1)
            found = await rows(container, [*urgent, last])
            waits = {
                g: (r.started_at - r.requested_at).total_seconds()
                for g, r in found.items()
                if r.started_at is not None
            }
            return {
                "seconds": burst_seconds,
                "order": sorted(urgent, key=lambda g: found[g].started_at),
                "rows": found,
                "waits": waits,
                "last": found[last],
                "degraded": metrics.ANALYSES_DEGRADED._value.get() - degraded_before,
            }
        finally:
            await container.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--games", type=int, default=20)
    parser.add_argument("--backlog", type=int, default=30)
    parser.add_argument("--plies", type=int, default=60)
    parser.add_argument("--degrade-after", type=float, default=4.0)
    parser.add_argument("--scale", type=float, default=0.2)
    args = parser.parse_args()
    for label, after in (("never degrading (baseline)", 0.0), ("degrading", args.degrade_after)):
        result = await burst(args, after)
        print(f"{label}: {args.games} interactive requests done in {result['seconds']:.1f} s")
        line = []
        for game_id in result["order"]:
            row = result["rows"][game_id]
            mark = "*" if row.degraded else ""
            line.append(f"{result['waits'][game_id]:.1f}s/{row.deep_nodes // 1000}k{mark}")
        print("  in start order, wait/deep budget (* degraded): " + ", ".join(line))
        waits = [result["waits"][g] for g in result["order"]]
        print(
            f"  wait median {statistics.median(waits):.1f} s, max {max(waits):.1f} s; "
            f"degraded {result['degraded']:.0f}; after the queue drained: deep "
            f"{result['last'].deep_nodes:,} nodes, degraded {result['last'].degraded}"
        )


if __name__ == "__main__":
    asyncio.run(main())
