"""Read side: a game's analysis and a player's report, straight from the store."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.orm import Session

from kibitz.adapters.store_models import Analysis, Game, MoveEval, PluginResult
from kibitz.adapters.store_sql import Compiled, SqlStore
from kibitz.errors import GameNotFound, NotFound


def analysis_view(session: Session, game_id: str, *, with_evals: bool = True) -> dict[str, Any]:
    """A game's analysis status, progress and results (NotFound for an unknown game)."""
    if session.scalar(select(Game.id).where(Game.id == game_id)) is None:
        raise GameNotFound(f"no game {game_id!r}")
    row = session.get(Analysis, game_id)
    if row is None:
        return _view(game_id, None, [], None)
    results = list(
        session.execute(select(*RESULT_COLUMNS).where(PluginResult.game_id == game_id)).all()
    )
    evals = None
    if with_evals and results:
        evals = list(
            session.execute(
                select(*EVAL_COLUMNS)
                .where(MoveEval.game_id == game_id, MoveEval.phase == results[0].phase)
                .order_by(MoveEval.ply)
            ).all()
        )
    return _view(game_id, row, results, evals)


RESULT_COLUMNS = (
    PluginResult.plugin,
    PluginResult.version,
    PluginResult.phase,
    PluginResult.result,
)
EVAL_COLUMNS = (MoveEval.ply, MoveEval.cp, MoveEval.mate, MoveEval.best_uci, MoveEval.line_san)
_PG = PGDialect_psycopg()  # type: ignore[no-untyped-call]
# The same three reads as statements PostgreSQL runs on the asyncio pool.
ANALYSIS_BY_GAME = Compiled.of(
    select(Game.id.label("known_game"), *Analysis.__table__.c)
    .select_from(Game)
    .outerjoin(Analysis, Analysis.game_id == Game.id)
    .where(Game.id == bindparam("id"))
    .compile(dialect=_PG)
)
RESULTS_OF_GAME = Compiled.of(
    select(*RESULT_COLUMNS).where(PluginResult.game_id == bindparam("id")).compile(dialect=_PG)
)
EVALS_OF_GAME = Compiled.of(
    select(*EVAL_COLUMNS)
    .where(MoveEval.game_id == bindparam("id"), MoveEval.phase == bindparam("phase"))
    .order_by(MoveEval.ply)
    .compile(dialect=_PG)
)


async def analysis_view_hot(store: SqlStore, game_id: str, *, with_evals: bool) -> dict[str, Any]:
    """`analysis_view` on PostgreSQL's asyncio pool (`SqlStore.hot`): no thread, no session."""
    found = await store.hot_one(ANALYSIS_BY_GAME, {"id": game_id})
    if found is None:
        raise GameNotFound(f"no game {game_id!r}")
    if found["game_id"] is None:
        return _view(game_id, None, [], None)
    results = [SimpleNamespace(**r) for r in await store.hot_all(RESULTS_OF_GAME, {"id": game_id})]
    evals = None
    if with_evals and results:
        params = {"id": game_id, "phase": results[0].phase}
        evals = [SimpleNamespace(**e) for e in await store.hot_all(EVALS_OF_GAME, params)]
    return _view(game_id, SimpleNamespace(**found), results, evals)


def _view(
    game_id: str, row: Any, results: Sequence[Any], evals: Sequence[Any] | None
) -> dict[str, Any]:
    """The view of an analysis row (None: never asked for), its plugins' results and, when
    asked for, the evaluations of their phase."""
    if row is None:
        return {"game_id": game_id, "status": "none", "phase": None, "progress": 0.0}
    total = row.positions_total or 0
    view: dict[str, Any] = {
        "game_id": game_id,
        "status": row.status,
        "phase": row.phase,
        "priority": row.priority,
        "progress": round(row.positions_done / total, 4) if total else 0.0,
        "positions_done": row.positions_done,
        "positions_total": total,
        "source": row.source,
        "engine": row.engine,
        "nodes": {"quick": row.quick_nodes, "deep": row.deep_nodes},
        "degraded": bool(row.degraded),
        "start": (
            {"cp": row.start_cp, "mate": row.start_mate}
            if row.start_cp is not None or row.start_mate is not None
            else None
        ),
        "error": row.error,
        "attempts": row.attempts,
        "requested_at": row.requested_at,
        "quick_done_at": row.quick_done_at,
        "finished_at": row.finished_at,
    }
    view["results"] = {
        r.plugin: {**r.result, "_version": r.version, "_phase": r.phase} for r in results
    }
    view["results_phase"] = results[0].phase if results else None
    if evals is not None:
        view["evals"] = [
            {"ply": e.ply, "cp": e.cp, "mate": e.mate, "best": e.best_uci, "line": e.line_san}
            for e in evals
        ]
    return view


def player_report(session: Session, username: str) -> dict[str, Any]:
    """A player's averages over their analysed games: accuracy, ACPL, errors per game, and the
    openings they play worst (lowest mean accuracy). NotFound when no game of theirs is here."""
    name = username.strip().lower()
    games = session.execute(
        select(Game.id, Game.white_id, Game.black_id, Game.opening_name, Game.opening_eco).where(
            (Game.white_id == name) | (Game.black_id == name)
        )
    ).all()
    if not games:
        raise NotFound(f"no games of {username!r} here; sync or import them first")
    by_id = {g.id: g for g in games}
    results = session.execute(
        select(PluginResult.game_id, PluginResult.result).where(
            PluginResult.plugin == "judgments", PluginResult.game_id.in_(list(by_id))
        )
    ).all()
    rows = []
    for game_id, result in results:
        game = by_id[game_id]
        side = "white" if game.white_id == name else "black"
        mine = result.get(side) or {}
        rows.append((game, mine))
    analysed = len(rows)

    def mean(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 1) if values else None

    accuracies = [m["accuracy"] for _, m in rows if m.get("accuracy") is not None]
    acpls = [m["acpl"] for _, m in rows if m.get("acpl") is not None]
    openings: dict[str, list[float]] = defaultdict(list)
    for game, mine in rows:
        if mine.get("accuracy") is not None:
            label = f"{game.opening_eco or '?'} {game.opening_name or 'unknown opening'}"
            openings[label].append(mine["accuracy"])
    ranked = sorted(openings.items(), key=lambda kv: (sum(kv[1]) / len(kv[1]), -len(kv[1])))
    worst = [{"opening": k, "games": len(v), "accuracy": mean(v)} for k, v in ranked[:5]]
    return {
        "username": username,
        "games": len(games),
        "analysed": analysed,
        "accuracy": mean(accuracies),
        "acpl": mean([float(a) for a in acpls]),
        "per_game": {
            kind: (round(sum(m.get(kind, 0) for _, m in rows) / analysed, 2) if analysed else None)
            for kind in ("inaccuracy", "mistake", "blunder")
        },
        "worst_openings": worst,
    }


def pending(session: Session, player: str) -> list[str]:
    """The player's games whose analysis is queued or running."""
    name = player.strip().lower()
    return list(
        session.scalars(
            select(Analysis.game_id)
            .join(Game, Game.id == Analysis.game_id)
            .where((Game.white_id == name) | (Game.black_id == name))
            .where(Analysis.status.in_(("queued", "running")))
        )
    )
