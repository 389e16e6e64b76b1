"""Read side: the puzzle pool and puzzles as served."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, TypeVar, cast

import chess
from prometheus_client import Gauge
from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.orm import Session

from kibitz.adapters.store_models import Analysis, Game, Problem, ProblemScan, ProblemTheme
from kibitz.adapters.store_sql import Compiled
from kibitz.domain import puzzles
from kibitz.errors import NotFound

Q = TypeVar("Q")
POOL_SIZE = Gauge("kibitz_problems_pool", "Puzzles in the pool", ["state"])


def current_rating(row: Any = Problem) -> Any:
    """A puzzle's rating: its Glicko-2 rating once solvers moved it, else its estimate."""
    return func.coalesce(row.glicko_rating, row.rating)


def _given(value: Any) -> bool:
    """A filter value given: a non-empty string, or an SQL expression (a bound parameter)."""
    return value is not None and (not isinstance(value, str) or bool(value))


def _filtered(
    query: Q,
    player: Any,
    theme: Any,
    rating_between: tuple[Any, Any] | None = None,
    row: Any = Problem,
) -> Q:
    """`query` on `row` (the problems table or an alias of it) narrowed to the puzzles of
    `player`'s games, of `theme`, and rated within `rating_between`. The values may be SQL
    expressions too (named parameters, for a statement compiled once)."""
    filtered: Any = query
    if rating_between is not None:
        low, high = rating_between
        filtered = filtered.where(current_rating(row) >= low, current_rating(row) <= high)
    if _given(player):
        name = player.strip().lower() if isinstance(player, str) else player
        filtered = filtered.where(or_(row.white_id == name, row.black_id == name))
    if _given(theme):
        filtered = filtered.where(
            row.id.in_(select(ProblemTheme.problem_id).where(ProblemTheme.theme == theme))
        )
    return cast(Q, filtered)


def unsearched_games(session: Session, player: str | None) -> list[str]:
    """Analysed games (of `player`, or all) not yet searched by this generator version."""
    searched = select(ProblemScan.game_id).where(ProblemScan.version >= puzzles.GENERATOR_VERSION)
    query = (
        select(Game.id)
        .join(Analysis, Analysis.game_id == Game.id)
        .where(Analysis.status == "done", Game.id.not_in(searched))
    )
    if player is not None:
        name = player.strip().lower()
        query = query.where(or_(Game.white_id == name, Game.black_id == name))
    return list(session.scalars(query.order_by(Game.id)))


def search_progress(session: Session, player: str | None) -> tuple[int, int]:
    """(games searched, games still waiting to be analysed or searched) among `player`'s
    games (or all): what a caller waiting for a generation request watches."""
    games = select(Game.id, Game.variant)
    if player is not None:
        name = player.strip().lower()
        games = games.where(or_(Game.white_id == name, Game.black_id == name))
    status = dict(session.execute(select(Analysis.game_id, Analysis.status)).all())
    scanned = set(
        session.scalars(
            select(ProblemScan.game_id).where(ProblemScan.version >= puzzles.GENERATOR_VERSION)
        )
    )
    searched = waiting = 0
    for game_id, variant in session.execute(games):
        if game_id in scanned:
            searched += 1
        elif variant in ("standard", "fromPosition") and status.get(game_id) != "failed":
            waiting += 1
    return searched, waiting


def problem_view(session: Session, problem: Problem) -> dict[str, Any]:
    game = session.get(Game, problem.game_id)
    return puzzle_view(
        problem, game.white_name if game else None, game.black_name if game else None
    )


@lru_cache(maxsize=4096)
def _played(
    fen: str, blunder_uci: str, solution: tuple[str, ...]
) -> tuple[str, str, tuple[str, ...]]:
    """The blunder's SAN, the puzzle's position and the solution's SANs. A stored puzzle's
    moves never change, and replaying them is most of the work of showing one: kept."""
    board = chess.Board(fen)
    blunder = chess.Move.from_uci(blunder_uci)
    blunder_san = board.san(blunder)
    board.push(blunder)
    puzzle_fen = board.fen()
    sans = []
    for uci in solution:
        move = chess.Move.from_uci(uci)
        sans.append(board.san(move))
        board.push(move)
    return blunder_san, puzzle_fen, tuple(sans)


def puzzle_view(problem: Any, white: str | None, black: str | None) -> dict[str, Any]:
    """A puzzle as the API shows it (with `_solution_san`, which `public` removes), from a
    row with the problems table's columns (an ORM object or any object with those attributes)
    and the names of its game's players."""
    blunder_san, puzzle_fen, sans = _played(
        problem.fen, problem.blunder_uci, tuple(problem.solution)
    )
    return {
        "id": problem.id,
        "fen": problem.fen,
        "blunder": {"uci": problem.blunder_uci, "san": blunder_san},
        "puzzle_fen": puzzle_fen,
        "solution_length": len(problem.solution),
        "solver": problem.solver_color,
        "kind": problem.kind,
        "themes": list(problem.themes),
        # A fixed estimate from the solution's length and themes (`domain.puzzles.difficulty`)
        # until solvers' first attempts move it (Glicko-2): say which (issue 17, item 12).
        "rating": round(problem.glicko_rating)
        if problem.glicko_rating is not None
        else problem.rating,
        "rating_kind": "glicko" if problem.glicko_rating is not None else "estimate",
        "rated_plays": problem.rated_plays or 0,
        "game": {
            "id": problem.game_id,
            "ply": problem.ply,
            "white": white,
            "black": black,
            "url": f"/games/{problem.game_id}#ply={problem.ply}",
        },
        "served_count": problem.served_count,
        "attempts": problem.attempts,
        "successes": problem.successes,
        "last_served_at": problem.last_served_at.isoformat() if problem.last_served_at else None,
        "_solution_san": list(sans),
    }


def problem_by_id(session: Session, problem_id: str) -> dict[str, Any]:
    """One puzzle as served (without its solution); NotFound when unknown."""
    row = session.get(Problem, problem_id)
    if row is None:
        raise NotFound(f"no puzzle {problem_id!r}")
    return public(problem_view(session, row))


# A puzzle and its game's players, by id: the statement PostgreSQL runs on the asyncio pool.
PROBLEM_BY_ID = Compiled.of(
    select(*Problem.__table__.c, Game.white_name, Game.black_name)
    .outerjoin(Game, Game.id == Problem.game_id)
    .where(Problem.id == bindparam("id"))
    .compile(dialect=PGDialect_psycopg())  # type: ignore[no-untyped-call]
)


def public(view: dict[str, Any]) -> dict[str, Any]:
    """A puzzle as served: without its solution."""
    return {k: v for k, v in view.items() if not k.startswith("_")}


def pool_view(session: Session, player: str | None = None) -> dict[str, Any]:
    """Totals, never-served count, by theme, and what is left to search."""
    base = _filtered(select(func.count(Problem.id)), player, None)
    total = session.scalar(base) or 0
    unserved = session.scalar(base.where(Problem.served_count == 0)) or 0
    theme_rows = session.execute(
        _filtered(
            select(
                ProblemTheme.theme,
                func.count(Problem.id),
                func.sum(func.coalesce(Problem.served_count, 0)),
            )
            .join(Problem, Problem.id == ProblemTheme.problem_id)
            .group_by(ProblemTheme.theme),
            player,
            None,
        )
    ).all()
    unserved_by_theme: dict[str, int] = dict(
        session.execute(
            _filtered(
                select(ProblemTheme.theme, func.count(Problem.id))
                .join(Problem, Problem.id == ProblemTheme.problem_id)
                .where(Problem.served_count == 0)
                .group_by(ProblemTheme.theme),
                player,
                None,
            )
        ).all()
    )
    scans = select(func.count(ProblemScan.game_id))
    if player is not None:  # the player's games only, as every other figure here
        name = player.strip().lower()
        scans = scans.join(Game, Game.id == ProblemScan.game_id).where(
            or_(Game.white_id == name, Game.black_id == name)
        )
    scanned = session.scalar(scans) or 0
    if player is None:
        POOL_SIZE.labels("total").set(total)
        POOL_SIZE.labels("never_served").set(unserved)
    return {
        "player": player,
        "total": total,
        "never_served": unserved,
        "by_theme": {
            theme: {"total": count, "never_served": unserved_by_theme.get(theme, 0)}
            for theme, count, _ in sorted(theme_rows, key=lambda r: (-r[1], r[0]))
        },
        "games_searched": scanned,
        "games_to_search": len(unsearched_games(session, player)),
    }
