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
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import chess

from kibitz import topics
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
from kibitz.domain.judgment import Score
from kibitz.errors import InvalidInput, KibitzError, MalformedEvent, NotFound
from kibitz.events import (
    AnalysisCompleted,
    AnalysisProgress,
    AnalysisRequested,
    Envelope,
    new_event,
    new_event_id,
)
from kibitz.ports.store import AnalysisJob, PhaseResult
from kibitz.runtime import metrics
from kibitz.runtime.consumer import RetryPolicy
from kibitz.runtime.dispatch import by_type
from kibitz.runtime.identity import process_owner
from kibitz.runtime.service import Service
from kibitz.services.context import Context
from kibitz.services.evaluator import analysis_use

log = logging.getLogger("kibitz.analysis")

LANES = ("interactive", "batch")
PHASES = ("quick", "deep")
# Progress updates: often for a user watching, rarely for batch work nobody watches.
PROGRESS_EVERY_SECONDS = {"interactive": 0.25, "batch": 2.0}
RETRY = RetryPolicy(max_attempts=6, base_delay=2.0, max_delay=60.0)


class JobCancelled(Exception):
    """The job's lease was taken back while it ran: stop, write nothing more."""


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

    view = await ctx.store.analyses.request(game_id, priority, force=force, now=ctx.clock.now())
    await ctx.publisher.publish(
        topic_for(priority),
        AnalysisRequested(game_id=game_id, priority=priority, force=force),
        game_id,
    )
    return view


async def request_player_analysis(
    ctx: Context, username: str | None, priority: str = "batch"
) -> int:
    """Queue every game of the player (None: every game here) that has no analysis yet;
    returns how many. NotFound when the player has no game here."""
    player = username.strip().lower() if username is not None else None
    ids = await ctx.store.analyses.queue_player(player, priority)
    if ids is None:
        if username is None:
            return 0
        raise NotFound(f"no games of {username!r} here; sync or import them first")
    if ids:
        await ctx.publisher.publish_many(
            topic_for(priority), [(AnalysisRequested(game_id=g, priority=priority), g) for g in ids]
        )
    return len(ids)


async def cancel_analysis(ctx: Context, game_id: str) -> dict[str, Any]:
    """Cancel a queued or running analysis: a queued request is skipped when it comes, a
    running job stops within a quarter of `KIBITZ_ANALYSIS_LEASE` and writes nothing more.
    Asking for the analysis again runs it. GameNotFound; Conflict when there is nothing to
    cancel."""
    was = await ctx.store.analyses.cancel(game_id)
    log.info("analysis_cancel_requested game=%s was=%s", game_id, was)
    return {"game_id": game_id, "status": "cancelled", "was": was}


# --- the worker ------------------------------------------------------------------------------


@dataclass
class _Job:
    game_id: str
    priority: str
    phase: str = "quick"  # the pass whose progress is reported
    done: dict[str, int] = field(default_factory=lambda: {"quick": 0, "deep": 0})
    requested_at: float = 0.0  # when it was asked for (epoch seconds, the request's time)
    started: float = 0.0  # time.monotonic() when this run began
    nodes: dict[str, int] = field(default_factory=dict)  # the budgets of this run, by phase
    quick_seconds: float = 0.0  # from the start to the quick pass stored


class AnalysisWorker:
    def __init__(self, ctx: Context, plugins: Sequence[Plugin] | None = None) -> None:
        self.ctx = ctx
        self._plugins = list(plugins) if plugins is not None else None
        self.owner = process_owner()
        self.running: dict[str, _Job] = {}
        s = ctx.settings
        self.nodes = {"quick": s.quick_nodes, "deep": s.deep_nodes}  # batch work's
        self.interactive_deep = s.interactive_deep_nodes
        self.interactive_quick = s.interactive_quick_budget
        self.degrade_after = s.degrade_after
        self.degraded = False  # interactive requests wait too long: lower deep budgets
        self.lease = s.analysis_lease
        self.max_attempts = RETRY.max_attempts

    @property
    def plugins(self) -> list[Plugin]:
        """The given plugins, else the module's active ones (read at each use)."""
        return self._plugins if self._plugins is not None else list(PLUGINS)

    # The consumer runtime calls this for both lanes.
    async def handle(self, envelope: Envelope, payload: AnalysisRequested) -> None:
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
        job = self.running[game_id] = _Job(
            game_id, payload.priority, requested_at=envelope.occurred_at.timestamp()
        )
        try:
            await self._analyse(job, payload)
        finally:
            self.running.pop(game_id, None)

    async def _analyse(self, job: _Job, payload: AnalysisRequested) -> None:
        game_id = job.game_id
        analyses = self.ctx.store.analyses
        data = await analyses.job(game_id)
        if data is None:
            raise MalformedEvent(f"no game {game_id!r}")
        if data.status == "done" and not payload.force:
            if data.completion_pending:  # a crash came between "done" and its event
                await self._publish_completion(game_id)
            if any((p.name, p.version) not in data.plugins for p in self.plugins):
                await self._rerun_plugins(game_id)
            return
        waited = max(0.0, time.time() - job.requested_at)  # from the request to this start
        job.nodes, degraded = self._budgets(job.priority, waited)
        claimed = await analyses.claim(
            game_id,
            self.owner,
            payload.priority,
            force=payload.force,
            now=self.ctx.clock.now(),
            lease_seconds=self.lease,
            nodes=(job.nodes["quick"], job.nodes["deep"]),
            engine=self.ctx.evaluator.name,
            degraded=degraded,
        )
        if claimed == "done":  # finished meanwhile: its event may still be due
            await self._publish_completion(game_id)
        if claimed in ("done", "cancelled"):
            return
        if claimed != "taken":
            raise JobBusy(f"analysis of {game_id} is running on {claimed}")
        job.started = time.monotonic()
        metrics.ANALYSIS_WAIT_SECONDS.labels(job.priority).observe(waited)
        if degraded:
            metrics.ANALYSES_DEGRADED.inc()
            log.info(
                "analysis_degraded game=%s waited=%.1fs deep_nodes=%d",
                game_id,
                waited,
                job.nodes["deep"],
            )
        run = asyncio.create_task(self._run(job, data))
        renew = asyncio.create_task(self._renew_lease(game_id, run))
        try:
            await run
        except JobCancelled:
            log.info("analysis_cancelled game=%s", game_id)  # by request: nothing to retry
            return
        except asyncio.CancelledError:
            if renew.done() and not renew.cancelled() and renew.result():
                log.info("analysis_cancelled game=%s", game_id)  # by request: nothing to retry
                return
            await self._give_back(job, asyncio.CancelledError())
            raise
        except BaseException as exc:
            await self._give_back(job, exc)
            raise
        finally:
            renew.cancel()
            run.cancel()

    def _budgets(self, priority: str, waited: float) -> tuple[dict[str, int], bool]:
        """The budgets of a run starting now after `waited` seconds, and whether they are
        degraded. Batch work searches at the batch budget. An interactive request gets the
        interactive deep budget, unless requests wait over `degrade_after` seconds: then the
        batch one, until a request starts within half of that again (the queue drained)."""
        if priority != "interactive":
            return dict(self.nodes), False
        if self.degrade_after > 0:
            if waited > self.degrade_after:
                self.degraded = True
            elif waited <= self.degrade_after / 2:
                self.degraded = False
            metrics.ANALYSIS_DEGRADED.set(int(self.degraded))
        deep = self.nodes["deep"] if self.degraded else self.interactive_deep
        return {"quick": self.interactive_quick, "deep": deep}, self.degraded and (
            deep < self.interactive_deep
        )

    async def _give_back(self, job: _Job, exc: BaseException) -> None:
        """A failed or timed-out run gives the job back (queued for a retry, or failed)."""
        reason = (
            f"timed out after {self.ctx.settings.analysis_timeout:g} s"
            if isinstance(exc, asyncio.CancelledError)
            else f"{type(exc).__name__}: {exc}"
        )
        with contextlib.suppress(Exception):
            released = await asyncio.shield(
                self.ctx.store.analyses.release(job.game_id, self.owner, reason, self.max_attempts)
            )
            if released is not None and released[0] == "failed":
                metrics.ANALYSES_FINISHED.labels("failed", released[1], job.priority).inc()

    async def _renew_lease(self, game_id: str, run: asyncio.Task[None]) -> bool:
        """Keep the lease while `run` works; when the lease was taken back (the job was
        cancelled), stop `run` and return True."""
        while True:
            await asyncio.sleep(self.lease / 4)
            try:
                until = self.ctx.clock.now() + self.lease
                held = await self.ctx.store.analyses.renew(game_id, self.owner, until)
            except Exception:
                continue  # the store is away: the next renewal tries again
            if not held:
                run.cancel()
                return True

    async def _run(self, job: _Job, data: AnalysisJob) -> None:
        base = data.game
        plies = len(base.moves_uci)
        if self.ctx.settings.reuse_lichess_analysis:
            # Lichess's own analysis of the game, from its export or a PGN it annotated.
            reused, source = None, ""
            if data.server_analysis and complete_evals(data.server_analysis, plies):
                reused, source = evals_from_lichess(data.server_analysis, plies), "lichess"
            elif data.pgn_evals and complete_evals(data.pgn_evals, plies):
                reused, source = evals_from_pgn(data.pgn_evals, plies), "pgn"
            if reused is not None:
                await self._store_phase(job, base, "deep", reused, source=source, final=True)
                await self._completed(job, source, plies)
                return
        boards = _boards(base)
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
        await self._completed(job, "engine", plies)

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
                start_score=results[0][0].score,
            )
            seconds = time.monotonic() - job.started
            metrics.ANALYSIS_PHASE_SECONDS.labels(phase, job.priority).observe(
                seconds if phase == "quick" else seconds - job.quick_seconds
            )
            if phase == "quick":
                job.quick_seconds = seconds
                first = max(0.0, time.time() - job.requested_at)  # the request to a result
                metrics.ANALYSIS_FIRST_RESULT_SECONDS.labels(job.priority).observe(first)
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
            job.nodes[phase],
            lambda: analysis_use(job.priority, phase),  # a lane change applies at once
            who="the analysis",
            on_cached=cached,
            on_searched=searched,
        )

    async def _progress(self, game_id: str, phase: str, done: int, total: int) -> None:
        await self.ctx.store.analyses.progress(game_id, self.owner, phase, done, total)
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
        start_score: Score | None = None,
    ) -> None:
        game = GameInput(**{**base.__dict__, "evals": evals})
        game_id = job.game_id
        stored = await self.ctx.store.analyses.store_phase(
            game_id,
            self.owner,
            PhaseResult(
                phase=phase,
                evals=evals,
                cached=cached,
                nodes=job.nodes.get(phase) if source == "engine" else None,
                source=source,
                results={p.name: (p.version, p.run(game)) for p in self.plugins},
                final=final,
                completion_event_id=new_event_id() if final else None,
                start_score=start_score,
            ),
            self.ctx.clock.now(),
        )
        if not stored:
            raise JobCancelled(f"the analysis of {game_id} was cancelled or taken over")
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

    async def _completed(self, job: _Job, source: str, plies: int) -> None:
        metrics.ANALYSES_FINISHED.labels("done", source, job.priority).inc()
        metrics.ANALYSIS_SECONDS_BY_LENGTH.labels(metrics.length_class(plies)).observe(
            time.monotonic() - job.started
        )
        await self._publish_completion(job.game_id)

    async def _publish_completion(self, game_id: str) -> None:
        """Publish the game's decided `analysis.completed` (under the id stored with "done"),
        then forget it. Run again after a crash in between, it publishes the same event id,
        which consumers recognise: one completion per analysis."""

        found = await self.ctx.store.analyses.pending_completion(game_id)
        if found is None:
            return
        event_id, source = found
        envelope = new_event(
            AnalysisCompleted(game_id=game_id, source=source), game_id, event_id=event_id
        )
        await self.ctx.publisher.publish_envelope(topics.ANALYSIS_COMPLETED, envelope)

        await self.ctx.store.analyses.completion_published(game_id, event_id)

    async def relay_completions(self) -> int:
        """Publish every completion stored "done" over RELAY_GRACE seconds ago and still
        unpublished (its handler crashed or was stopped after settling the request): the
        request's redelivery would publish it, but a settled request is not redelivered.
        Returns how many were published."""
        before = self.ctx.clock.now() - RELAY_GRACE
        published = 0
        for game_id in await self.ctx.store.analyses.unpublished_completions(before, 100):
            if game_id not in self.running:
                await self._publish_completion(game_id)
                published += 1
        return published

    async def _rerun_plugins(self, game_id: str) -> None:
        """Run the plugins whose current version has no result, on the stored evaluations."""
        analyses = self.ctx.store.analyses
        loaded = await analyses.stored(game_id)
        job = await analyses.job(game_id)
        if loaded is None or job is None:
            return
        game, phase = loaded
        await analyses.add_results(
            game_id,
            phase,
            [
                (p.name, p.version, p.run(game))
                for p in self.plugins
                if (p.name, p.version) not in job.plugins
            ],
        )


def _boards(game: GameInput) -> list[chess.Board]:
    """The start position and the position after every ply, each with its move history."""
    board = chess.Board(game.initial_fen) if game.initial_fen else chess.Board()
    out = [board.copy()]
    for uci in game.moves_uci:
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


RELAY_GRACE = 10.0  # seconds a stored completion is left to its own handler
RELAY_EVERY = 30.0  # seconds between two looks for unpublished completions


def build(ctx: Context) -> Service:
    worker = AnalysisWorker(ctx)  # the engine pool is started by `Container.start`

    async def completion_relay() -> None:
        while True:  # for ever, a look each RELAY_EVERY seconds; failures wait for the next
            try:
                if published := await worker.relay_completions():
                    log.info("completions_relayed count=%d", published)
            except Exception as exc:  # the store or the log may be briefly away
                log.warning("completion_relay_failed error=%s", exc)
            await asyncio.sleep(RELAY_EVERY)  # wall time: the pace of upkeep, not domain time

    return Service(
        name="analysis",
        handlers=dict.fromkeys(
            (topics.ANALYSIS_INTERACTIVE, topics.ANALYSIS_BATCH),
            by_type("the analysis", {AnalysisRequested: worker.handle}),
        ),
        retry=RetryPolicy(
            max_attempts=RETRY.max_attempts,
            base_delay=RETRY.base_delay,
            max_delay=RETRY.max_delay,
            handler_timeout=ctx.settings.analysis_timeout,
        ),
        record_event_ids=False,  # idempotent by the job's state and natural keys
        loops=[completion_relay],
        component=worker,
        description="Stockfish analysis in two lanes and two phases; plugins on the evaluations",
    )
