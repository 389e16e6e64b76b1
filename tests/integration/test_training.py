"""The training read side on SQLite and PostgreSQL: the puzzle dashboard's numbers equal a
direct computation over the attempts, and a player whose failures gather in one theme has that
theme named weak."""

from __future__ import annotations

import asyncio
from typing import Any

from kibitz.adapters.repositories_sql import SqlRepositories
from kibitz.adapters.store_sql import SqlStore
from kibitz.domain import training
from kibitz.ports.store import ProblemScanResult, StoredPuzzle
from kibitz.read.reader import Reader
from tests.support import stored_puzzle

NOW = 1_800_000_000.0
DAY = 86400.0


async def test_failures_gathered_in_one_theme_make_it_weak_and_the_numbers_add_up(
    database_url: str,
) -> None:
    sql = SqlStore(database_url)
    await asyncio.to_thread(sql.upgrade)
    try:
        repos, reader = SqlRepositories(sql), Reader(sql)
        # theme -> (solved at the first try, failed), each puzzle attempted once
        plan = {"fork": (2, 6), "pin": (7, 1), "backRankMate": (6, 2)}
        puzzles: list[StoredPuzzle] = []
        outcomes: list[tuple[str, bool, int]] = []
        for theme, (wins, fails) in plan.items():
            for i in range(wins + fails):
                rating = 1300 + 50 * i
                pid = f"{theme}{i}-1"
                puzzles.append(stored_puzzle(pid, themes=[theme], rating=rating))
                outcomes.append((pid, i < wins, rating))
        scan = ProblemScanResult("x", 1, 1, 1, [], 0.1)
        await repos.problems.save_scan(scan, puzzles, NOW)
        for n, (pid, solved, _) in enumerate(outcomes):
            at = NOW - DAY * (n % 5) - 60  # within the last 5 days
            await repos.training.rate_attempt("ann", pid, solved, at, training.rate)
        # A second attempt is not a first one; an attempt 40 days ago is outside 30 days.
        await repos.training.rate_attempt("ann", "fork0-1", False, NOW, training.rate)
        old = stored_puzzle("old-1", themes=["pin"], rating=2500)
        await repos.problems.save_scan(scan, [old], NOW)
        await repos.training.rate_attempt("ann", "old-1", False, NOW - 40 * DAY, training.rate)

        dash: dict[str, Any] = await reader.dashboard("ann", 30, NOW)

        def direct(rows: list[tuple[str, bool, int]]) -> dict[str, Any]:
            wins = sum(1 for _, s, _ in rows if s)
            avg = sum(r for _, _, r in rows) / len(rows)
            return {
                "attempts": len(rows),
                "first_wins": wins,
                "failed": len(rows) - wins,
                "performance": round(avg - 500 + 1000 * wins / len(rows)),
            }

        def shown(results: dict[str, Any]) -> dict[str, Any]:
            return {k: results[k] for k in ("attempts", "first_wins", "failed", "performance")}

        assert shown(dash["global"]) == direct(outcomes)
        for theme in plan:
            mine = [o for o in outcomes if o[0].startswith(theme)]
            assert shown(dash["themes"][theme]) == direct(mine)
        assert dash["weak_themes"] == ["fork"]
        assert dash["rated_attempts"] == len(outcomes) + 1  # the old one was rated too
        week = await reader.dashboard("ann", 1, NOW)
        assert week["global"]["attempts"] == sum(1 for n in range(len(outcomes)) if n % 5 == 0)
        rating, _, _ = await repos.training.solver("ann")
        assert dash["rating"] == round(rating.rating)
    finally:
        await sql.aclose()
