"""analysis: Stockfish over every position of a game, a quick pass then a deep pass, plugins on
the evaluations; the interactive lane always ahead of batch work.

A job is leased in the store (`analyses.lease_owner`/`lease_until`, renewed while it runs), so
one worker at a time analyses a game; a worker that dies leaves its lease to expire and its
uncommitted message to be redelivered to another worker, which then takes the job over. Results
are keyed by (game, phase, ply) and (game, plugin, version) and written by replacement, so a job
run twice leaves exactly one row of each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import chess
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from kibitz import topics
from kibitz.adapters.store_models import Analysis, Game, MoveEval, PluginResult
from kibitz.domain.analysis import (
    BUILTIN_PLUGINS,
    GameInput,
    Plugin,
    PlyEval,
    complete_evals,
    evals_from_lichess,
    evals_from_pgn,
)
from kibitz.domain.engine import EngineEval
from kibitz.domain.judgment import stored_score
from kibitz.errors import GameNotFound, InvalidInput, KibitzError, MalformedEvent, NotFound
from kibitz.events import (
    AnalysisCompleted,
    AnalysisProgress,
    AnalysisRequested,
    Envelope,
    Payload,
    new_event,
    new_event_id,
)
from kibitz.runtime import metrics
from kibitz.runtime.consumer import RetryPolicy
from kibitz.runtime.service import Service
from kibitz.services.context import Context
from kibitz.services.evaluator import analysis_use

log = logging.getLogger("kibitz.analysis")

LANES = ("interactive", "batch")
PHASES = ("quick", "deep")
LEASE_SECONDS = 20.0
# Progress updates: often for a user watching, rarely for batch work nobody watches.
PROGRESS_EVERY_SECONDS = {"interactive": 0.25, "batch": 2.0}
RETRY = RetryPolicy(max_attempts=6, base_delay=2.0, max_delay=60.0)


class JobBusy(KibitzError):
    """Another live worker holds the game's lease; the request is retried later."""

    code = "analysis_busy"
    http_status = 409


def topic_for(priority: str) -> str:
    return topics.ANALYSIS_INTERACTIVE if priority == "interactive" else topics.ANALYSIS_BATCH


# --- requests (API, CLI, scheduler) ----------------------------------------------------------


async def request_analysis(
    ctx: Context, game_id: str, priority: str = "interactive", *, force: bool = False
) -> dict[str, Any]:
    """Queue a game's analysis in a lane; a game already queued in batch moves to interactive.
    Raises NotFound for an unknown game, InvalidInput for an unknown lane."""
    if priority not in LANES:
        raise InvalidInput(f"priority must be one of {', '.join(LANES)}, not {priority!r}")

    def write(session: Session) -> dict[str, Any]:
        if session.get(Game, game_id) is None:
            raise GameNotFound(f"no game {game_id!r}")
        row = session.get(Analysis, game_id)
        if row is None:
            row = Analysis(game_id=game_id, status="queued", phase="quick", priority=priority)
            session.add(row)
        elif row.status in ("done", "failed") and (force or row.status == "failed"):
            row.status, row.phase, row.error, row.attempts = "queued", "quick", None, 0
            row.positions_done = 0
            row.priority = priority
        elif priority == "interactive":
            row.priority = "interactive"  # moves a queued or running batch job ahead
        row.requested_at = datetime.now(UTC)
        return {"game_id": game_id, "status": row.status, "priority": row.priority}

    view = await ctx.store.run(write)
    await ctx.publisher.publish(
        topic_for(priority),
        AnalysisRequested(game_id=game_id, priority=priority, force=force),
        game_id,
    )
    return view


async def request_player_analysis(ctx: Context, username: str, priority: str = "batch") -> int:
    """Queue every game of the player that has no analysis yet; returns how many."""
    name = username.strip().lower()

    def pending(session: Session) -> list[str]:
        done = select(Analysis.game_id).where(Analysis.status.in_(("done", "running", "queued")))
        ids = session.scalars(
            select(Game.id)
            .where((Game.white_id == name) | (Game.black_id == name))
            .where(Game.id.not_in(done))
            .order_by(Game.played_at_ms.desc())
        ).all()
        if not ids and not session.scalar(
            select(Game.id).where((Game.white_id == name) | (Game.black_id == name)).limit(1)
        ):
            raise NotFound(f"no games of {username!r} here; sync or import them first")
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

    ids = await ctx.store.run(pending)
    if ids:
        await ctx.publisher.publish_many(
            topic_for(priority), [(AnalysisRequested(game_id=g, priority=priority), g) for g in ids]
        )
    return len(ids)


# --- reading ---------------------------------------------------------------------------------


def analysis_view(session: Session, game_id: str, *, with_evals: bool = True) -> dict[str, Any]:
    """A game's analysis status, progress and results (NotFound for an unknown game)."""
    game = session.get(Game, game_id)
    if game is None:
        raise GameNotFound(f"no game {game_id!r}")
    row = session.get(Analysis, game_id)
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
        "error": row.error,
        "attempts": row.attempts,
        "requested_at": row.requested_at,
        "quick_done_at": row.quick_done_at,
        "finished_at": row.finished_at,
    }
    results = session.scalars(select(PluginResult).where(PluginResult.game_id == game_id)).all()
    view["results"] = {
        r.plugin: {**r.result, "_version": r.version, "_phase": r.phase} for r in results
    }
    view["results_phase"] = results[0].phase if results else None
    if with_evals and results:
        phase = results[0].phase
        evals = session.scalars(
            select(MoveEval)
            .where(MoveEval.game_id == game_id, MoveEval.phase == phase)
            .order_by(MoveEval.ply)
        ).all()
        view["evals"] = [
            {"ply": e.ply, "cp": e.cp, "mate": e.mate, "best": e.best_uci, "line": e.line_san}
            for e in evals
        ]
    return view


# --- the worker ------------------------------------------------------------------------------


@dataclass
class _Job:
    game_id: str
    priority: str
    phase: str = "quick"  # the pass whose progress is reported
    done: dict[str, int] = field(default_factory=lambda: {"quick": 0, "deep": 0})


@dataclass
class _GameData:
    moves_uci: list[str]
    moves_san: list[str]
    initial_fen: str | None
    clocks_cs: list[int] | None
    clock_initial: int | None
    clock_increment: int | None
    result: str
    server_analysis: list[Any] | None
    pgn_evals: list[Any] | None
    status: str
    phase: str
    missing_plugins: bool
    completion_pending: bool = False


class AnalysisWorker:
    def __init__(self, ctx: Context, plugins: Sequence[Plugin] | None = None) -> None:
        self.ctx = ctx
        self._plugins = list(plugins) if plugins is not None else None
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.running: dict[str, _Job] = {}
        s = ctx.settings
        self.nodes = {"quick": s.quick_nodes, "deep": s.deep_nodes}
        self.max_attempts = RETRY.max_attempts

    @property
    def plugins(self) -> list[Plugin]:
        """The given plugins, else the module's active ones (read at each use)."""
        return self._plugins if self._plugins is not None else list(PLUGINS)

    # The consumer runtime calls this for both lanes.
    async def handle(self, envelope: Envelope, payload: Payload) -> None:
        assert isinstance(payload, AnalysisRequested)
        game_id = payload.game_id
        if payload.priority not in LANES:
            raise MalformedEvent(f"unknown lane {payload.priority!r}")
        job = self.running.get(game_id)
        if job is not None:  # already being analysed here: move it up if asked; its own
            if payload.priority == "interactive":  # request carries its retries
                job.priority = "interactive"
            return
        # Reserved before the first await: a second request for the game handled meanwhile by
        # this process (the other lane, a retry, a redelivery) finds it and does not start.
        job = self.running[game_id] = _Job(game_id, payload.priority)
        try:
            await self._analyse(job, payload)
        finally:
            self.running.pop(game_id, None)

    async def _analyse(self, job: _Job, payload: AnalysisRequested) -> None:
        game_id = job.game_id
        data = await self.ctx.store.read(lambda s: self._load(s, game_id))
        if data is None:
            raise MalformedEvent(f"no game {game_id!r}")
        if data.status == "done" and not payload.force:
            if data.completion_pending:  # a crash came between "done" and its event
                await self._publish_completion(game_id)
            if data.missing_plugins:
                await self._rerun_plugins(game_id)
            return
        claimed = await self.ctx.store.run(
            lambda s: self._claim(s, game_id, payload.priority, force=payload.force)
        )
        if claimed == "done":
            return
        if claimed is not None:
            raise JobBusy(f"analysis of {game_id} is running on {claimed}")
        renew = asyncio.create_task(self._renew_lease(game_id))
        try:
            await self._run(job, data)
        except BaseException as exc:
            reason = (
                f"timed out after {self.ctx.settings.analysis_timeout:g} s"
                if isinstance(exc, asyncio.CancelledError)
                else f"{type(exc).__name__}: {exc}"
            )
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    self.ctx.store.run(lambda s: self._release(s, game_id, reason))
                )
            raise
        finally:
            renew.cancel()

    def _load(self, session: Session, game_id: str) -> _GameData | None:
        game = session.get(Game, game_id)
        if game is None:
            return None
        row = session.get(Analysis, game_id)
        have = {
            (p, v)
            for p, v in session.execute(
                select(PluginResult.plugin, PluginResult.version).where(
                    PluginResult.game_id == game_id
                )
            )
        }
        return _GameData(
            moves_uci=game.moves_uci.split() if game.moves_uci else [],
            moves_san=game.moves_san.split() if game.moves_san else [],
            initial_fen=game.initial_fen,
            clocks_cs=list(game.clocks_cs) if game.clocks_cs else None,
            clock_initial=game.clock_initial,
            clock_increment=game.clock_increment,
            result=game.result,
            server_analysis=list(game.server_analysis) if game.server_analysis else None,
            pgn_evals=list(game.pgn_evals) if game.pgn_evals else None,
            status=row.status if row else "none",
            phase=row.phase if row else "quick",
            missing_plugins=any((p.name, p.version) not in have for p in self.plugins),
            completion_pending=bool(row and row.completion_event_id),
        )

    def _claim(
        self, session: Session, game_id: str, priority: str, *, force: bool = False
    ) -> str | None:
        """Take the game's lease: None when taken; "done" when another run finished it since
        it was read (unless `force`); else the live holder's name."""
        now = time.time()
        row = session.get(Analysis, game_id, with_for_update=not self.ctx.store.is_sqlite)
        if row is None:
            row = Analysis(game_id=game_id, priority=priority)
            session.add(row)
        if row.status == "done" and not force:
            return "done"
        if row.lease_owner and row.lease_owner != self.owner and row.lease_until > now:
            return row.lease_owner
        row.lease_owner, row.lease_until = self.owner, now + LEASE_SECONDS
        row.status, row.phase, row.error = "running", "quick", None
        row.priority = "interactive" if "interactive" in (priority, row.priority) else priority
        row.attempts = (row.attempts or 0) + 1
        row.started_at = datetime.now(UTC)
        row.positions_done = 0
        row.quick_nodes, row.deep_nodes = self.nodes["quick"], self.nodes["deep"]
        row.engine = self.ctx.evaluator.name
        return None

    def _release(self, session: Session, game_id: str, reason: str) -> None:
        row = session.get(Analysis, game_id)
        if row is None or row.lease_owner != self.owner:
            return
        final = row.attempts >= self.max_attempts
        if final:
            metrics.ANALYSES_FINISHED.labels("failed", row.source or "engine").inc()
        row.status = "failed" if final else "queued"
        row.error = reason if final else f"retrying after attempt {row.attempts}: {reason}"
        row.lease_owner, row.lease_until = None, 0.0

    async def _renew_lease(self, game_id: str) -> None:
        while True:
            await asyncio.sleep(LEASE_SECONDS / 4)

            def renew(session: Session) -> None:
                session.execute(
                    update(Analysis)
                    .where(Analysis.game_id == game_id, Analysis.lease_owner == self.owner)
                    .values(lease_until=time.time() + LEASE_SECONDS)
                )

            with contextlib.suppress(Exception):
                await self.ctx.store.run(renew)

    async def _run(self, job: _Job, data: _GameData) -> None:
        base = GameInput(
            moves_uci=data.moves_uci,
            moves_san=data.moves_san,
            evals=[],
            initial_fen=data.initial_fen,
            clocks_cs=data.clocks_cs,
            clock_initial=data.clock_initial,
            clock_increment=data.clock_increment,
            result=data.result,
        )
        plies = len(data.moves_uci)
        if self.ctx.settings.reuse_lichess_analysis:
            # Lichess's own analysis of the game, from its export or a PGN it annotated.
            reused, source = None, ""
            if data.server_analysis and complete_evals(data.server_analysis, plies):
                reused, source = evals_from_lichess(data.server_analysis, plies), "lichess"
            elif data.pgn_evals and complete_evals(data.pgn_evals, plies):
                reused, source = evals_from_pgn(data.pgn_evals, plies), "pgn"
            if reused is not None:
                await self._store_phase(job, base, "deep", reused, source=source, final=True)
                await self._completed(job.game_id, source)
                return
        boards = _boards(data)
        # Batch work queues both passes at once: the deep searches wait behind the quick ones
        # in the engine pool, so the engines never idle while a quick pass is being stored.
        # A user waiting for the quick pass gets it first, without deep searches competing
        # for the CPU while it is stored.
        searches: dict[str, asyncio.Future[list[tuple[EngineEval, bool]]]] = {
            "quick": asyncio.ensure_future(self._search(job, "quick", boards))
        }
        if job.priority != "interactive":
            searches["deep"] = asyncio.ensure_future(self._search(job, "deep", boards))
        try:
            await self._store_searches(job, base, boards, searches)
        except BaseException:
            for task in searches.values():
                task.cancel()
            await asyncio.gather(*searches.values(), return_exceptions=True)
            raise
        await self._completed(job.game_id, "engine")

    async def _store_searches(
        self,
        job: _Job,
        base: GameInput,
        boards: list[chess.Board],
        searches: dict[str, asyncio.Future[list[tuple[EngineEval, bool]]]],
    ) -> None:
        for phase in PHASES:
            if phase not in searches:
                searches[phase] = asyncio.ensure_future(self._search(job, phase, boards))
            results = await searches[phase]
            evals = _ply_evals(boards, results)
            await self._store_phase(
                job,
                base,
                phase,
                evals,
                source="engine",
                final=phase == "deep",
                cached=[c for _, c in results],
            )
            if phase == "quick":
                job.phase = "deep"
                await self._progress(job.game_id, "deep", job.done["deep"], len(boards))

    async def _search(
        self, job: _Job, phase: str, boards: list[chess.Board]
    ) -> list[tuple[EngineEval, bool]]:
        """Every position's evaluation at the phase's budget, through the evaluator (the cache
        first). Progress is published as searches finish, throttled by lane."""
        last = [0.0]
        total = len(boards)

        async def cached(n: int) -> None:
            job.done[phase] = n
            if job.phase == phase:
                await self._progress(job.game_id, phase, n, total)

        async def searched() -> None:
            job.done[phase] += 1
            now = time.monotonic()
            if job.phase == phase and now - last[0] >= PROGRESS_EVERY_SECONDS[job.priority]:
                last[0] = now
                await self._progress(job.game_id, phase, job.done[phase], total)

        return await self.ctx.evaluator.evaluate_all(
            boards,
            self.nodes[phase],
            lambda: analysis_use(job.priority, phase),  # a lane change applies at once
            who="the analysis",
            on_cached=cached,
            on_searched=searched,
        )

    async def _progress(self, game_id: str, phase: str, done: int, total: int) -> None:
        def write(session: Session) -> None:
            session.execute(
                update(Analysis)
                .where(Analysis.game_id == game_id, Analysis.lease_owner == self.owner)
                .values(phase=phase, positions_done=done, positions_total=total)
            )

        await self.ctx.store.run(write)
        await self.ctx.publisher.publish(
            topics.ANALYSIS_PROGRESS,
            AnalysisProgress(
                game_id=game_id,
                status="running",
                phase=phase,
                positions_done=done,
                positions_total=total,
            ),
            game_id,
        )

    async def _store_phase(
        self,
        job: _Job,
        base: GameInput,
        phase: str,
        evals: list[PlyEval],
        *,
        source: str,
        final: bool,
        cached: list[bool] | None = None,
    ) -> None:
        game = GameInput(**{**base.__dict__, "evals": evals})
        results = {p.name: (p.version, p.run(game)) for p in self.plugins}
        game_id = job.game_id
        nodes = self.nodes.get(phase) if source == "engine" else None
        store = self.ctx.store

        def write(session: Session) -> None:
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
                            "nodes": nodes,
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
                        "result": result,
                        "computed_at": datetime.now(UTC),
                    }
                    for name, (version, result) in results.items()
                ],
            )
            row = session.get(Analysis, game_id)
            assert row is not None
            row.source = source
            row.positions_total = len(evals) + 1
            row.positions_done = row.positions_total
            if phase == "quick":
                row.quick_done_at = datetime.now(UTC)
            if final:
                row.status, row.phase = "done", phase
                row.finished_at = datetime.now(UTC)
                row.lease_owner, row.lease_until = None, 0.0
                row.error = None
                row.completion_event_id = new_event_id()
            else:
                row.phase = "deep"
                row.positions_done = 0  # the deep pass's own count follows at once

        await store.run(write)
        await self.ctx.publisher.publish(
            topics.ANALYSIS_PROGRESS,
            AnalysisProgress(
                game_id=game_id,
                status="done" if final else "running",
                phase=phase if final else "deep",
                positions_done=len(evals) + 1 if final else 0,
                positions_total=len(evals) + 1,
            ),
            game_id,
        )

    async def _completed(self, game_id: str, source: str) -> None:
        metrics.ANALYSES_FINISHED.labels("done", source).inc()
        await self._publish_completion(game_id)

    async def _publish_completion(self, game_id: str) -> None:
        """Publish the game's decided `analysis.completed` (under the id stored with "done"),
        then forget it. Run again after a crash in between, it publishes the same event id,
        which consumers recognise: one completion per analysis."""

        def pending(session: Session) -> tuple[str, str] | None:
            row = session.get(Analysis, game_id)
            if row is None or row.completion_event_id is None:
                return None
            return row.completion_event_id, row.source or "engine"

        found = await self.ctx.store.read(pending)
        if found is None:
            return
        event_id, source = found
        envelope = new_event(
            AnalysisCompleted(game_id=game_id, source=source), game_id, event_id=event_id
        )
        await self.ctx.publisher.publish_envelope(topics.ANALYSIS_COMPLETED, envelope)

        def published(session: Session) -> None:
            session.execute(
                update(Analysis)
                .where(Analysis.game_id == game_id, Analysis.completion_event_id == event_id)
                .values(completion_event_id=None)
            )

        await self.ctx.store.run(published)

    async def _rerun_plugins(self, game_id: str) -> None:
        """Run the plugins whose current version has no result, on the stored evaluations."""

        def load(session: Session) -> tuple[GameInput, str] | None:
            game = session.get(Game, game_id)
            row = session.get(Analysis, game_id)
            if game is None or row is None:
                return None
            phase = row.phase
            stored = session.scalars(
                select(MoveEval)
                .where(MoveEval.game_id == game_id, MoveEval.phase == phase)
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
            return (
                GameInput(
                    moves_uci=game.moves_uci.split(),
                    moves_san=game.moves_san.split(),
                    evals=evals,
                    initial_fen=game.initial_fen,
                    clocks_cs=game.clocks_cs,
                    clock_initial=game.clock_initial,
                    clock_increment=game.clock_increment,
                    result=game.result,
                ),
                phase,
            )

        loaded = await self.ctx.store.read(load)
        if loaded is None:
            return
        game, phase = loaded
        have = await self.ctx.store.read(
            lambda s: {
                (name, version)
                for name, version in s.execute(
                    select(PluginResult.plugin, PluginResult.version).where(
                        PluginResult.game_id == game_id
                    )
                )
            }
        )
        results = [(p, p.run(game)) for p in self.plugins if (p.name, p.version) not in have]

        def write(session: Session) -> None:
            for plugin, result in results:
                session.execute(
                    delete(PluginResult).where(
                        PluginResult.game_id == game_id,
                        PluginResult.plugin == plugin.name,
                        PluginResult.version == plugin.version,
                    )
                )
                session.add(
                    PluginResult(
                        game_id=game_id,
                        plugin=plugin.name,
                        version=plugin.version,
                        phase=phase,
                        result=result,
                    )
                )

        await self.ctx.store.run(write)


def _boards(data: _GameData) -> list[chess.Board]:
    """The start position and the position after every ply, each with its move history."""
    board = chess.Board(data.initial_fen) if data.initial_fen else chess.Board()
    out = [board.copy()]
    for uci in data.moves_uci:
        board.push_uci(uci)
        out.append(board.copy())
    return out


def _ply_evals(boards: list[chess.Board], results: list[tuple[EngineEval, bool]]) -> list[PlyEval]:
    """Per ply: the score after it, and the best move and line of the position before it."""
    out = []
    for i in range(1, len(boards)):
        before, _ = results[i - 1]
        after, _ = results[i]
        line = None
        if before.pv_uci:
            board = boards[i - 1].copy(stack=False)
            sans = []
            for uci in before.pv_uci:
                move = chess.Move.from_uci(uci)
                if move not in board.legal_moves:
                    break
                sans.append(board.san(move))
                board.push(move)
            line = " ".join(sans) or None
        out.append(PlyEval(score=after.score, best_uci=before.best_uci, line_san=line))
    return out


PLUGINS: Sequence[Plugin] = BUILTIN_PLUGINS  # the active plugins


def build(ctx: Context) -> Service:
    worker = AnalysisWorker(ctx)  # the engine pool is started by `Container.start`
    return Service(
        name="analysis",
        handlers={topics.ANALYSIS_INTERACTIVE: worker.handle, topics.ANALYSIS_BATCH: worker.handle},
        retry=RetryPolicy(
            max_attempts=RETRY.max_attempts,
            base_delay=RETRY.base_delay,
            max_delay=RETRY.max_delay,
            handler_timeout=ctx.settings.analysis_timeout,
        ),
        record_event_ids=False,  # idempotent by the job's state and natural keys
        description="Stockfish analysis in two lanes and two phases; plugins on the evaluations",
    )


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
