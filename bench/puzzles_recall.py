"""Puzzle recall: does kibitz find the puzzles lichess-puzzler found, with the same solution?

The set: real rows of the Lichess puzzle database (CC0; tests/fixtures/lichess_puzzles.csv,
source in tests/fixtures/README.md), the mate, advantage and crushing puzzles (the kinds
lichess-puzzler's generator makes today). Each row is replayed as a short game: the row's
position as a FEN setup, the opponent's mistake, then Lichess's solution. The games are
imported with the PGN importer, analysed by the analysis service at its default budgets, and
searched for puzzles by the problems service (embedded: SQLite, the embedded log).

Per node budget (`--nodes`, several for a curve; the analysis is shared):
- recall: rows whose mistake (ply 1 of the replay) became a kibitz puzzle;
- exact: rows whose Lichess solution is accepted move by move through
  `POST /api/problems/{id}/attempts` — the puzzle's position is Lichess's, each of Lichess's
  solver moves is accepted, and every reply kibitz plays is Lichess's reply;
- puzzles per engine-minute: puzzles stored / (search wall time x engines / 60), the search
  alone (analysis excluded), and the searches made.
Rows missed are listed with the reason kibitz gave (`--verbose`).

    .venv/bin/python bench/puzzles_recall.py [--nodes 400000 1000000] [--limit N]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.problems import import_and_analyse  # noqa: E402
from tests.support import lichess_puzzle_rows, puzzle_replay_pgn  # noqa: E402

from kibitz.adapters.store_models import Problem, ProblemScan, ProblemTheme  # noqa: E402
from kibitz.api.app import create_app  # noqa: E402
from kibitz.domain import puzzles  # noqa: E402
from kibitz.domain.games import game_from_pgn  # noqa: E402
from kibitz.runtime.bootstrap import bootstrap  # noqa: E402
from kibitz.services.problems import request_generation  # noqa: E402
from kibitz.settings import load_settings  # noqa: E402

KINDS = {"mate", "advantage", "crushing"}


@dataclass(frozen=True)
class Row:
    puzzle_id: str
    fen: str
    moves: list[str]  # the mistake, then the solution
    themes: list[str]

    @property
    def kind(self) -> str:
        return "mate" if "mate" in self.themes else "advantage"

    def pgn(self) -> str:
        return puzzle_replay_pgn(self.puzzle_id, self.fen, self.moves)


def load_rows(limit: int | None = None) -> list[Row]:
    """The set: the database rows of the kinds lichess-puzzler makes, in file order."""
    rows = []
    for raw in lichess_puzzle_rows():
        themes = raw["Themes"].split()
        if KINDS & set(themes):
            rows.append(Row(raw["PuzzleId"], raw["FEN"], raw["Moves"].split(), themes))
    return rows[:limit] if limit else rows


def game_id_of(pgn: str) -> str:
    return game_from_pgn(pgn).id


async def attempt_line(client: httpx.AsyncClient, puzzle_id: str, row: Row) -> str | None:
    """Play Lichess's solution through the attempts endpoint; None when it is accepted
    exactly (each solver move right, each reply Lichess's), else what differed."""
    solution = row.moves[1:]
    solver_moves = solution[0::2]
    for step in range(len(solver_moves)):
        answer = await client.post(
            f"/api/problems/{puzzle_id}/attempts", json={"moves": solver_moves[: step + 1]}
        )
        if answer.status_code != 200:
            return f"step {step}: HTTP {answer.status_code} {answer.json().get('detail', '')}"
        body = answer.json()
        if not body["correct"]:
            return f"step {step}: {solver_moves[step]} refused, expected {body['expected']['uci']}"
        last = step == len(solver_moves) - 1
        reply = body.get("reply")
        if not last:
            if reply is None or reply["uci"] != solution[2 * step + 1]:
                got = reply["uci"] if reply else "the end"
                return f"step {step}: reply {got}, Lichess {solution[2 * step + 1]}"
        elif not body["complete"]:
            return f"kibitz's line is longer ({len(solver_moves)} solver moves are not all)"
    return None


async def analyse(settings: Any, pgn: str, ids: list[str]) -> float:
    began = time.perf_counter()
    view, stored = await import_and_analyse(settings, pgn, "puzzles.pgn")
    assert sorted(stored) == sorted(ids), view
    return time.perf_counter() - began


async def search(settings: Any, rows: list[Row], ids: list[str], verbose: bool) -> dict[str, Any]:
    container = bootstrap(settings)
    await container.start(["problems"])
    await container.sql.run(_forget_puzzles)
    try:
        began = time.perf_counter()
        await request_generation(container.ctx, None)
        while await container.sql.read(_scanned) < len(ids):
            await asyncio.sleep(0.2)
        seconds = time.perf_counter() - began
        found = await container.sql.read(_puzzles)
        scans = await container.sql.read(_scans)
        searches = await container.sql.read(_search_count)
        app = create_app(container)
        transport = httpx.ASGITransport(app=app)
        recalled = exact = 0
        by_kind: dict[str, list[int]] = {}
        missed: list[str] = []
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for row, game_id in zip(rows, ids, strict=True):
                counts = by_kind.setdefault(row.kind, [0, 0, 0])
                counts[0] += 1
                puzzle_id = f"{game_id}-1"
                if puzzle_id not in found:
                    reasons = scans.get(game_id) or "no candidate"
                    missed.append(f"{row.puzzle_id} ({row.kind}): not found: {reasons}")
                    continue
                recalled += 1
                counts[1] += 1
                differs = await attempt_line(client, puzzle_id, row)
                if differs is None:
                    exact += 1
                    counts[2] += 1
                else:
                    missed.append(
                        f"{row.puzzle_id} ({row.kind}): line differs: {differs}; kibitz "
                        f"{' '.join(found[puzzle_id])}, Lichess {' '.join(row.moves[1:])}"
                    )
    finally:
        await container.close()
    engine_minutes = seconds * settings.engines / 60
    result = {
        "nodes": settings.problem_nodes,
        "rows": len(rows),
        "recall": recalled / len(rows),
        "exact": exact / len(rows),
        "puzzles": len(found),
        "seconds": seconds,
        "searches": searches,
        "per_engine_minute": len(found) / engine_minutes if engine_minutes else 0.0,
        "by_kind": by_kind,
    }
    if verbose:
        for line in missed:
            print("   ", line)
    return result


def _forget_puzzles(session: Any) -> None:
    from sqlalchemy import delete

    for model in (ProblemTheme, Problem, ProblemScan):
        session.execute(delete(model))


def _scanned(session: Any) -> int:
    from sqlalchemy import func, select

    return session.scalar(select(func.count(ProblemScan.game_id))) or 0


def _puzzles(session: Any) -> dict[str, list[str]]:
    from sqlalchemy import select

    return {p.id: list(p.solution) for p in session.scalars(select(Problem))}


def _scans(session: Any) -> dict[str, str]:
    from sqlalchemy import select

    out = {}
    for scan in session.scalars(select(ProblemScan)):
        reasons = [f"ply {r['ply']}: {r['reason']}" for r in scan.rejected or []]
        out[scan.game_id] = "; ".join(reasons) if reasons else ""
    return {k: v for k, v in out.items() if v}


def _search_count(session: Any) -> int:
    from sqlalchemy import func, select

    return session.scalar(select(func.sum(ProblemScan.searches))) or 0


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[None])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--engines", type=int, default=2)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--set", nargs="*", default=[], help="more settings, name=value")
    parser.add_argument(
        "--gap",
        type=float,
        nargs="+",
        default=[None],
        help="exploration: other only-move margins (win chances) than the domain's",
    )
    args = parser.parse_args()
    rows = load_rows(args.limit)
    pgn = "\n\n".join(row.pgn() for row in rows)
    ids = [game_id_of(row.pgn()) for row in rows]
    assert len(set(ids)) == len(ids), "two rows replay as the same game"
    home = Path(tempfile.mkdtemp(prefix="kibitz-bench-recall-"))
    extra = dict(item.split("=", 1) for item in args.set)
    base = load_settings(home=home, demo=False, engines=args.engines, **extra)
    kinds = {k: sum(1 for r in rows if r.kind == k) for k in ("mate", "advantage")}
    print(
        f"{len(rows)} real Lichess puzzles ({kinds['mate']} mate, {kinds['advantage']} advantage)"
    )
    seconds = await analyse(base, pgn, ids)
    print(f"analysed in {seconds:.0f} s (quick {base.quick_nodes:,} + deep {base.deep_nodes:,})")
    default_gap = puzzles.ATTACK_GAP
    for gap, nodes in [(g, n) for g in args.gap for n in args.nodes]:
        settings = base.model_copy(update={"problem_nodes": nodes}) if nodes else base
        puzzles.ATTACK_GAP = gap if gap is not None else default_gap
        print(f"only-move margin {puzzles.ATTACK_GAP}")
        r = await search(settings, rows, ids, args.verbose)
        kinds_text = ", ".join(
            f"{k}: {c[1]}/{c[0]} found, {c[2]} exact" for k, c in sorted(r["by_kind"].items())
        )
        print(
            f"nodes {r['nodes']:>10,}: recall {r['recall']:.1%}, exact line {r['exact']:.1%} "
            f"({kinds_text}); {r['puzzles']} puzzles in {r['seconds']:.0f} s, "
            f"{r['searches']} searches, {r['per_engine_minute']:.1f} puzzles per engine-minute"
        )


if __name__ == "__main__":
    asyncio.run(main())
