"""The analyses repository (`kibitz.ports.store.Analyses`) on SQLAlchemy."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, true, update
from sqlalchemy.orm import Session

from kibitz.adapters import lease_sql
from kibitz.adapters.store_models import Analysis, Game, MoveEval, PluginResult
from kibitz.adapters.store_sql import SqlStore
from kibitz.domain.analysis import GameInput, PlyEval
from kibitz.domain.judgment import stored_score
from kibitz.errors import Conflict, GameNotFound
from kibitz.ports.store import AnalysisJob, Claim, PhaseResult


def game_input(game: Game, evals: Sequence[PlyEval] = ()) -> GameInput:
    """A stored game as the analysis and its plugins see it, with `evals`."""
    return GameInput(
        moves_uci=game.moves_uci.split() if game.moves_uci else [],
        moves_san=game.moves_san.split() if game.moves_san else [],
        evals=list(evals),
        initial_fen=game.initial_fen,
        clocks_cs=list(game.clocks_cs) if game.clocks_cs else None,
        clock_initial=game.clock_initial,
        clock_increment=game.clock_increment,
        result=game.result,
    )


def _versions(session: Session, game_id: str) -> frozenset[tuple[str, int]]:
    rows = session.execute(
        select(PluginResult.plugin, PluginResult.version).where(PluginResult.game_id == game_id)
    )
    return frozenset((p, v) for p, v in rows)


class SqlAnalyses:
    def __init__(self, store: SqlStore) -> None:
        self.store = store

    async def request(
        self, game_id: str, priority: str, *, force: bool, now: float
    ) -> dict[str, Any]:
        def write(session: Session) -> dict[str, Any]:
            if session.get(Game, game_id) is None:
                raise GameNotFound(f"no game {game_id!r}")
            row = session.get(Analysis, game_id)
            if row is None:
                row = Analysis(game_id=game_id, status="queued", phase="quick", priority=priority)
                session.add(row)
            elif row.status in ("done", "failed", "cancelled") and (force or row.status != "done"):
                row.status, row.phase, row.error, row.attempts = "queued", "quick", None, 0
                row.positions_done = 0
                row.priority = priority
            elif priority == "interactive":
                row.priority = "interactive"  # moves a queued or running batch job ahead
            row.requested_at = datetime.fromtimestamp(now, UTC)
            return {"game_id": game_id, "status": row.status, "priority": row.priority}

        return await self.store.run(write)

    async def queue_player(self, player_id: str | None, priority: str) -> list[str] | None:
        def write(session: Session) -> list[str] | None:
            done = select(Analysis.game_id).where(
                Analysis.status.in_(("done", "running", "queued"))
            )
            mine = (
                (Game.white_id == player_id) | (Game.black_id == player_id)
                if player_id is not None
                else true()
            )
            ids = session.scalars(
                select(Game.id)
                .where(mine)
                .where(Game.id.not_in(done))
                .order_by(Game.played_at_ms.desc())
            ).all()
            if not ids and not session.scalar(select(Game.id).where(mine).limit(1)):
                return None
            for gid in ids:
                session.merge(
                    Analysis(
                        game_id=gid,
                        status="queued",
                        phase="quick",
                        priority=priority,
                        attempts=0,
                        error=None,
                    )
                )
            return list(ids)

        return await self.store.run(write)

    async def job(self, game_id: str) -> AnalysisJob | None:
        def read(session: Session) -> AnalysisJob | None:
            game = session.get(Game, game_id)
            if game is None:
                return None
            row = session.get(Analysis, game_id)
            return AnalysisJob(
                game=game_input(game),
                server_analysis=list(game.server_analysis) if game.server_analysis else None,
                pgn_evals=list(game.pgn_evals) if game.pgn_evals else None,
                status=row.status if row else "none",
                phase=row.phase if row else "quick",
                plugins=_versions(session, game_id),
                completion_pending=bool(row and row.completion_event_id),
            )

        return await self.store.read(read)

    async def claim(
        self,
        game_id: str,
        owner: str,
        priority: str,
        *,
        force: bool,
        now: float,
        lease_seconds: float,
        nodes: tuple[int, int],
        engine: str,
        degraded: bool = False,
    ) -> Claim:
        def write(session: Session) -> Claim:
            row = session.get(Analysis, game_id, with_for_update=not self.store.is_sqlite)
            if row is None:
                row = Analysis(game_id=game_id, priority=priority)
                session.add(row)
            if row.status in ("done", "cancelled") and not force:
                return "done" if row.status == "done" else "cancelled"
            held = lease_sql.holder(row, owner, now)
            if held is not None:
                return held
            lease_sql.take(row, owner, now, lease_seconds)
            row.status, row.phase, row.error = "running", "quick", None
            row.priority = "interactive" if "interactive" in (priority, row.priority) else priority
            row.attempts = (row.attempts or 0) + 1
            row.started_at = datetime.fromtimestamp(now, UTC)
            row.positions_done = 0
            row.quick_nodes, row.deep_nodes = nodes
            row.degraded = degraded
            row.engine = engine
            return "taken"

        return await self.store.run(write)

    async def release(
        self, game_id: str, owner: str, reason: str, max_attempts: int
    ) -> tuple[str, str] | None:
        def write(session: Session) -> tuple[str, str] | None:
            row = session.get(Analysis, game_id)
            if row is None or row.lease_owner != owner:
                return None
            final = row.attempts >= max_attempts
            row.status = "failed" if final else "queued"
            row.error = reason if final else f"retrying after attempt {row.attempts}: {reason}"
            lease_sql.give_back(row)
            return row.status, row.source or "engine"

        return await self.store.run(write)

    async def renew(self, game_id: str, owner: str, until: float) -> bool:
        statement = (
            update(Analysis)
            .where(Analysis.game_id == game_id, Analysis.lease_owner == owner)
            .values(lease_until=until)
            .returning(Analysis.game_id)
        )
        return await self.store.run(lambda s: s.execute(statement).scalar() is not None)

    async def cancel(self, game_id: str) -> str:
        def write(session: Session) -> str:
            if session.get(Game, game_id) is None:
                raise GameNotFound(f"no game {game_id!r}")
            row = session.get(Analysis, game_id, with_for_update=not self.store.is_sqlite)
            if row is None or row.status not in ("queued", "running"):
                status = row.status if row is not None else "none"
                raise Conflict(f"nothing to cancel: the analysis of {game_id} is {status}")
            was = row.status
            row.status, row.error = "cancelled", "cancelled by request"
            lease_sql.give_back(row)
            return was

        return await self.store.run(write)

    async def progress(self, game_id: str, owner: str, phase: str, done: int, total: int) -> None:
        await self.store.run(
            lambda s: s.execute(
                update(Analysis)
                .where(Analysis.game_id == game_id, Analysis.lease_owner == owner)
                .values(phase=phase, positions_done=done, positions_total=total)
            )
        )

    async def store_phase(self, game_id: str, owner: str, result: PhaseResult, now: float) -> bool:
        at = datetime.fromtimestamp(now, UTC)
        store, phase, evals, cached = self.store, result.phase, result.evals, result.cached

        def write(session: Session) -> bool:
            row = session.get(Analysis, game_id, with_for_update=not store.is_sqlite)
            if row is None or row.lease_owner != owner:
                return False
            session.execute(
                delete(MoveEval).where(MoveEval.game_id == game_id, MoveEval.phase == phase)
            )
            if evals:
                session.execute(
                    store.insert(MoveEval),
                    [
                        {
                            "game_id": game_id,
                            "phase": phase,
                            "ply": i + 1,
                            "cp": e.score.cp if e.score else None,
                            "mate": e.score.mate if e.score else None,
                            "best_uci": e.best_uci,
                            "line_san": e.line_san,
                            "nodes": result.nodes,
                            "cached": bool(cached and cached[i + 1]),
                        }
                        for i, e in enumerate(evals)
                    ],
                )
            session.execute(delete(PluginResult).where(PluginResult.game_id == game_id))
            session.execute(
                store.insert(PluginResult),
                [
                    {
                        "game_id": game_id,
                        "plugin": name,
                        "version": version,
                        "phase": phase,
                        "result": value,
                        "computed_at": at,
                    }
                    for name, (version, value) in result.results.items()
                ],
            )
            row.source = result.source
            start = result.start_score
            row.start_cp = start.cp if start else None
            row.start_mate = start.mate if start else None
            row.positions_total = len(evals) + 1
            row.positions_done = row.positions_total
            if phase == "quick":
                row.quick_done_at = at
            if result.final:
                row.status, row.phase = "done", phase
                row.finished_at = at
                lease_sql.give_back(row)
                row.error = None
                row.completion_event_id = result.completion_event_id
            else:
                row.phase = "deep"
                row.positions_done = 0  # the deep pass's own count follows at once
            return True

        return await store.run(write)

    async def pending_completion(self, game_id: str) -> tuple[str, str] | None:
        def read(session: Session) -> tuple[str, str] | None:
            row = session.get(Analysis, game_id)
            if row is None or row.completion_event_id is None:
                return None
            return row.completion_event_id, row.source or "engine"

        return await self.store.read(read)

    async def completion_published(self, game_id: str, event_id: str) -> None:
        await self.store.run(
            lambda s: s.execute(
                update(Analysis)
                .where(Analysis.game_id == game_id, Analysis.completion_event_id == event_id)
                .values(completion_event_id=None)
            )
        )

    async def unpublished_completions(self, finished_before: float, limit: int) -> list[str]:
        before = datetime.fromtimestamp(finished_before, UTC)
        return await self.store.read(
            lambda s: list(
                s.scalars(
                    select(Analysis.game_id)
                    .where(Analysis.completion_event_id.is_not(None), Analysis.finished_at < before)
                    .order_by(Analysis.finished_at)
                    .limit(limit)
                )
            )
        )

    async def stored(self, game_id: str) -> tuple[GameInput, str] | None:
        def read(session: Session) -> tuple[GameInput, str] | None:
            game = session.get(Game, game_id)
            row = session.get(Analysis, game_id)
            if game is None or row is None:
                return None
            stored = session.scalars(
                select(MoveEval)
                .where(MoveEval.game_id == game_id, MoveEval.phase == row.phase)
                .order_by(MoveEval.ply)
            ).all()
            evals = [
                PlyEval(
                    score=stored_score(e.cp, e.mate),
                    best_uci=e.best_uci,
                    line_san=e.line_san,
                    better_line=True if row.source == "pgn" else None,  # see evals_from_pgn
                )
                for e in stored
            ]
            return game_input(game, evals), row.phase

        return await self.store.read(read)

    async def add_results(
        self, game_id: str, phase: str, results: Sequence[tuple[str, int, dict[str, Any]]]
    ) -> None:
        def write(session: Session) -> None:
            for plugin, version, value in results:
                session.execute(
                    delete(PluginResult).where(
                        PluginResult.game_id == game_id,
                        PluginResult.plugin == plugin,
                        PluginResult.version == version,
                    )
                )
                session.add(
                    PluginResult(
                        game_id=game_id, plugin=plugin, version=version, phase=phase, result=value
                    )
                )

        await self.store.run(write)

    async def missing_results(self, plugins: Sequence[tuple[str, int]], limit: int) -> list[str]:
        def read(session: Session) -> list[str]:
            found: list[str] = []
            for name, version in plugins:
                have = select(PluginResult.game_id).where(
                    PluginResult.plugin == name, PluginResult.version == version
                )
                found += session.scalars(
                    select(Analysis.game_id)
                    .where(Analysis.status == "done", Analysis.game_id.not_in(have))
                    .limit(limit)
                ).all()
            return list(dict.fromkeys(found))[:limit]

        return await self.store.read(read)
