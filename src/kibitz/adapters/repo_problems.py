"""The problems repository (`kibitz.ports.store.Problems`) on SQLAlchemy."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from types import SimpleNamespace
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy import (
    DateTime,
    Float,
    Integer,
    String,
    and_,
    bindparam,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.orm import Session, aliased

from kibitz.adapters.store_models import (
    Analysis,
    Game,
    MoveEval,
    Problem,
    ProblemScan,
    ProblemTheme,
)
from kibitz.adapters.store_sql import Compiled, SqlStore
from kibitz.domain.judgment import stored_score
from kibitz.errors import NotFound, UpstreamUnavailable
from kibitz.ports.store import ProblemScanResult, PuzzleSource, StoredPuzzle
from kibitz.read.problems import _filtered, problem_view, puzzle_view, unsearched_games

SERVE_CANDIDATES = 16  # puzzles looked at per round when concurrent clients take some
SERVE_ROUNDS = 100


def never_served(session: Session, player: str | None, at_most: int | None = None) -> int:
    """How many puzzles (of `player`'s games) were never served; counting stops at `at_most`
    (enough to compare with a threshold without counting a large pool on every serve)."""
    ids = _filtered(select(Problem.id), player, None).where(Problem.served_count == 0)
    if at_most is not None:
        ids = ids.limit(at_most)
    return session.scalar(select(func.count()).select_from(ids.subquery())) or 0


def serve_next(
    session: Session,
    player: str | None,
    theme: str | None,
    now: datetime,
    rating_between: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """The least recently served matching puzzle (never served first), marked served in the
    same transaction, so concurrent clients never get the same one. Puzzles served fewer times
    come first, so a pool is served round by round (each once, then each twice, …) however
    many clients serve at once: timestamps taken by concurrent clients may reach the store out
    of order, counts cannot (issue 17, item 9).

    PostgreSQL: `FOR UPDATE SKIP LOCKED` alone is not enough. A row locked and served by
    another transaction is still returned to one that read it before that commit (its WHERE
    is checked again on the new row version, its ORDER BY is not). So the first candidates
    are read, then each is locked only if its `served_count` is still the one read: a puzzle
    served meanwhile fails that check and the next candidate is tried. SQLite has one writer
    at a time."""
    order = (Problem.served_count, Problem.last_served_at.asc().nulls_first(), Problem.id)
    for _ in range(SERVE_ROUNDS):
        seen = session.execute(
            _filtered(select(Problem.id, Problem.served_count), player, theme, rating_between)
            .order_by(*order)
            .limit(SERVE_CANDIDATES)
        ).all()
        if not seen:
            raise _none_yet(player, theme)
        for problem_id, served_count in seen:
            problem = session.scalars(
                select(Problem)
                .where(Problem.id == problem_id, Problem.served_count == served_count)
                .with_for_update(skip_locked=True)
                .execution_options(populate_existing=True)
            ).first()
            if problem is not None:
                problem.last_served_at = now
                problem.served_count += 1
                return problem_view(session, problem)
    raise UpstreamUnavailable("the puzzle pool is too busy right now; try again")


def _none_yet(player: str | None, theme: str | None) -> NotFound:
    what = " ".join(x for x in (f"of {player!r}" if player else "", theme or "") if x)
    return NotFound(f"no puzzle {what} yet".replace("  ", " "))


def _narrowed(query: Any, row: Any, player: bool, theme: bool, rating: bool) -> Any:
    """`query` on `row` narrowed by `_filtered`, with named parameters (player, theme, low,
    high) in place of the values."""
    return _filtered(
        query,
        bindparam("player", type_=String) if player else None,
        bindparam("theme", type_=String) if theme else None,
        (bindparam("low", type_=Float), bindparam("high", type_=Float)) if rating else None,
        row=row,
    )


@cache
def _pg_serving(player: bool, theme: bool, rating: bool) -> tuple[Compiled, Compiled]:
    """PostgreSQL's serving statement for one kind of filter, compiled once (SQL text with
    named parameters), and the statement that tells "none at all" from "all taken".

    One statement serves: the puzzles served fewest times (their count as this statement's
    snapshot saw it), least recently served first, are read; the first of them that no one
    else holds is locked (`SKIP LOCKED`) only if its count is still the one read, since
    PostgreSQL checks a locked row's join condition again on its newest version, so one
    served meanwhile is passed over; it is marked served, and returned with its game's
    players and how many matching puzzles were never served (counted up to a limit). Nothing
    is returned when every candidate was taken meanwhile: the caller tries again. Counts
    only grow, so a puzzle served once more than the least served is never chosen."""
    flags = (player, theme, rating)
    every = aliased(Problem, name="every")
    fewest = _narrowed(select(func.min(every.served_count)), every, *flags).scalar_subquery()
    cand = aliased(Problem, name="cand")
    seen = (
        _narrowed(select(cand.id, cand.served_count, cand.last_served_at), cand, *flags)
        .where(cand.served_count == fewest)
        .order_by(cand.last_served_at.asc().nulls_first(), cand.id)
        .limit(bindparam("candidates", type_=Integer))
        .cte("seen")
    )
    held = aliased(Problem, name="held")
    pick = (
        select(held.id)
        .join(seen, and_(held.id == seen.c.id, held.served_count == seen.c.served_count))
        .order_by(seen.c.last_served_at.asc().nulls_first(), seen.c.id)
        .limit(1)
        .with_for_update(of=held, skip_locked=True)
        .cte("pick")
    )
    left = aliased(Problem, name="never")
    unserved = (
        _narrowed(select(left.id), left, *flags)
        .where(left.served_count == 0)
        .limit(bindparam("count_up_to", type_=Integer))
        .subquery()
    )
    names = [
        select(column).where(Game.id == Problem.game_id).correlate(Problem).scalar_subquery()
        for column in (Game.white_name, Game.black_name)
    ]
    serve = (
        update(Problem)
        .where(Problem.id == pick.c.id)
        .values(
            served_count=Problem.served_count + 1,
            last_served_at=bindparam("now", type_=DateTime(timezone=True)),
        )
        .returning(
            *Problem.__table__.c,
            names[0].label("white_name"),
            names[1].label("black_name"),
            select(func.count()).select_from(unserved).scalar_subquery().label("never_served"),
        )
    )
    exists = _narrowed(select(literal(1)), Problem, *flags).limit(1)
    dialect = PGDialect_psycopg()  # type: ignore[no-untyped-call]
    return Compiled.of(serve.compile(dialect=dialect)), Compiled.of(exists.compile(dialect=dialect))


async def _serve_pg(
    pool: AsyncConnectionPool,
    player: str | None,
    theme: str | None,
    at: datetime,
    count_up_to: int,
    rating_between: tuple[float, float] | None,
) -> tuple[dict[str, Any], int]:
    name = player.strip().lower() if player else None  # as `_filtered` takes it
    theme = theme or None
    serve, exists = _pg_serving(name is not None, theme is not None, rating_between is not None)
    low, high = rating_between or (0.0, 0.0)
    params = {
        "player": name,
        "theme": theme,
        "low": low,
        "high": high,
        "now": at,
        "candidates": SERVE_CANDIDATES,
        "count_up_to": count_up_to + 1,  # the snapshot still counts the one served now
    }
    broken = 0  # pooled connections found broken (the store restarted): checked, one more try
    for _ in range(SERVE_ROUNDS):
        try:
            async with pool.connection() as conn:
                cursor = conn.cursor(row_factory=dict_row)
                row = await (await cursor.execute(serve.sql, serve.params(params))).fetchone()
                if row is None and (
                    await (await conn.execute(exists.sql, exists.params(params))).fetchone() is None
                ):
                    raise _none_yet(player, theme)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            broken += 1
            if broken > 1 or isinstance(exc, PoolTimeout):
                raise UpstreamUnavailable(f"the store cannot be reached: {exc}") from exc
            await pool.check()  # the other idle connections: the broken ones are replaced
            continue
        if row is not None:
            was_new = row["served_count"] == 1
            remaining = min(count_up_to, row["never_served"] - (1 if was_new else 0))
            view = puzzle_view(SimpleNamespace(**row), row["white_name"], row["black_name"])
            return view, remaining
        await asyncio.sleep(0.001)  # every candidate was taken meanwhile: the next ones
    raise UpstreamUnavailable("the puzzle pool is too busy right now; try again")


class SqlProblems:
    def __init__(self, store: SqlStore) -> None:
        self.store = store

    async def source(self, game_id: str, version: int) -> PuzzleSource | None:
        def read(session: Session) -> PuzzleSource | None:
            scan = session.get(ProblemScan, game_id)
            if scan is not None and scan.version >= version:
                return None
            game = session.get(Game, game_id)
            analysis = session.get(Analysis, game_id)
            if game is None or analysis is None or analysis.status != "done":
                return None
            if game.variant not in ("standard", "fromPosition"):
                return None  # puzzles follow standard chess rules
            phases = {
                phase: session.execute(
                    select(MoveEval.ply, MoveEval.cp, MoveEval.mate)
                    .where(MoveEval.game_id == game_id, MoveEval.phase == phase)
                    .order_by(MoveEval.ply)
                ).all()
                for phase in ("deep", "quick")
            }
            rows = phases["deep"] or phases["quick"]
            moves = game.moves_uci.split() if game.moves_uci else []
            if not rows or not moves:
                return None
            by_ply = {r.ply: stored_score(r.cp, r.mate) for r in rows}
            return PuzzleSource(
                game_id=game.id,
                white_id=game.white_id,
                black_id=game.black_id,
                initial_fen=game.initial_fen,
                moves_uci=moves,
                scores=[by_ply.get(ply) for ply in range(1, len(moves) + 1)],
                start_score=stored_score(analysis.start_cp, analysis.start_mate),
            )

        return await self.store.read(read)

    async def save_scan(
        self, scan: ProblemScanResult, puzzles: Sequence[StoredPuzzle], now: float
    ) -> None:
        rows = [p.__dict__ for p in puzzles]
        store = self.store

        def write(session: Session) -> None:
            if rows:
                session.execute(store.insert(Problem).on_conflict_do_nothing(), rows)
                session.execute(
                    store.insert(ProblemTheme).on_conflict_do_nothing(),
                    [{"problem_id": r["id"], "theme": t} for r in rows for t in r["themes"]],
                )
            session.merge(
                ProblemScan(
                    game_id=scan.game_id,
                    version=scan.version,
                    candidates=scan.candidates,
                    problems=len(rows),
                    searches=scan.searches,
                    rejected=list(scan.rejected),
                    seconds=round(scan.seconds, 3),
                    scanned_at=datetime.fromtimestamp(now, UTC),
                )
            )

        await store.run(write)

    async def unsearched(self, player: str | None) -> list[str]:
        return await self.store.read(lambda s: unsearched_games(s, player))

    async def games(self, player: str | None) -> tuple[int, int]:
        def read(session: Session) -> tuple[int, int]:
            games = select(func.count(Game.id))
            if player:
                games = games.where(or_(Game.white_id == player, Game.black_id == player))
            return session.scalar(games) or 0, len(unsearched_games(session, player))

        return await self.store.read(read)

    async def low_pool(self, player: str | None, threshold: int) -> bool:
        def read(session: Session) -> bool:
            return never_served(session, player) < threshold and bool(
                unsearched_games(session, player)
            )

        return await self.store.read(read)

    async def serve(
        self,
        player: str | None,
        theme: str | None,
        now: float,
        count_up_to: int,
        rating_between: tuple[float, float] | None = None,
    ) -> tuple[dict[str, Any], int]:
        at = datetime.fromtimestamp(now, UTC)
        pool = await self.store.hot()
        if pool is not None:
            return await _serve_pg(pool, player, theme, at, count_up_to, rating_between)

        def write(session: Session) -> tuple[dict[str, Any], int]:
            view = serve_next(session, player, theme, at, rating_between)
            return view, never_served(session, player, at_most=count_up_to)

        return await self.store.run(write)

    async def solution(self, problem_id: str) -> tuple[str, str, list[str]] | None:
        def read(session: Session) -> tuple[str, str, list[str]] | None:
            row = session.get(Problem, problem_id)
            return (row.fen, row.blunder_uci, list(row.solution)) if row is not None else None

        return await self.store.read(read)

    async def attempted(self, problem_id: str, *, ended: bool, solved: bool) -> tuple[int, int]:
        def write(session: Session) -> tuple[int, int]:
            if ended:
                session.execute(
                    update(Problem)
                    .where(Problem.id == problem_id)
                    .values(
                        attempts=Problem.attempts + 1,
                        successes=Problem.successes + (1 if solved else 0),
                    )
                )
            row = session.execute(
                select(Problem.attempts, Problem.successes).where(Problem.id == problem_id)
            ).one()
            return int(row[0]), int(row[1])

        return await self.store.run(write)
