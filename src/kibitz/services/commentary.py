"""The commentary service: one line of commentary for every ply that reaches `live.moves`.

Each move is evaluated with the engine pool at a small node budget (the evaluation cache
first; the position before the move is usually the previous move's, kept in memory), judged
with the same code as the analysis, described by the configured commentator (engine-grounded
templates by default; an LLM when `KIBITZ_LLM_URL` is set, with the templates answering when
it is slow or failing) and, when asked, spoken by espeak-ng. The store keeps one line per
(game, ply); a redelivered move is not commented twice.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

import chess
from prometheus_client import Histogram

from kibitz import topics
from kibitz.domain.commentary import Comment, MoveFacts, move_facts
from kibitz.domain.engine import EngineEval
from kibitz.domain.judgment import white_percent
from kibitz.errors import MalformedEvent, UpstreamUnavailable
from kibitz.events import (
    CommentaryPublished,
    Envelope,
    LiveMove,
    LiveSession,
    ProfilePublished,
)
from kibitz.runtime.consumer import RetryPolicy
from kibitz.runtime.dispatch import by_type
from kibitz.runtime.service import Service
from kibitz.services.context import Context

log = logging.getLogger("kibitz.commentary")

KEEP_GAMES = 256  # evaluations kept in memory for this many games

COMMENTARY_LATENCY = Histogram(
    "kibitz_commentary_latency_seconds",
    "From a move's publication to its commentary's",
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
)


class CommentaryWorker:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.commentator = ctx.commentator
        self.speech = ctx.speech
        self.profiles: dict[str, dict[str, Any]] = {}
        self.evals: OrderedDict[str, tuple[int, EngineEval]] = OrderedDict()

    async def on_profile(self, envelope: Envelope, published: ProfilePublished) -> None:
        self.profiles[published.username.lower()] = dict(published.profile)

    async def on_session(self, envelope: Envelope, session: LiveSession) -> None:
        if session.state == "ended":
            self.evals.pop(session.game_id, None)

    async def on_move(self, envelope: Envelope, move_event: LiveMove) -> None:
        game_id, ply = move_event.game_id, move_event.ply
        if await self.ctx.store.commentaries.exists(game_id, ply):
            return
        try:
            board = chess.Board(move_event.fen_before)
            move = chess.Move.from_uci(move_event.uci)
        except ValueError as exc:
            raise MalformedEvent(f"live.move {game_id}#{ply}: {exc}") from None
        if move not in board.legal_moves:
            raise MalformedEvent(f"live.move {game_id}#{ply}: {move_event.uci} is not legal")
        known = self.evals.get(game_id)
        before = known[1] if known and known[0] == ply - 1 else await self.evaluate(board)
        after_board = board.copy(stack=False)
        after_board.push(move)
        after = await self.evaluate(after_board)
        self.evals[game_id] = (ply, after)
        self.evals.move_to_end(game_id)
        while len(self.evals) > KEEP_GAMES:
            self.evals.popitem(last=False)

        white_moved = board.turn == chess.WHITE
        facts = move_facts(
            game_id,
            ply,
            board,
            move,
            before.score,
            after.score,
            before.best_uci,
            white_name=move_event.white,
            black_name=move_event.black,
            mover_clock=move_event.white_clock if white_moved else move_event.black_clock,
            initial_clock=move_event.initial_clock,
        )
        comment = await self.commentator.comment(facts)
        await self._load_profile(move_event.username)
        audio = await self._audio(move_event, comment) if self._wants_speech(move_event) else None
        await self._publish(envelope, move_event, facts, comment, after, audio)

    async def evaluate(self, board: chess.Board) -> EngineEval:
        """The position's evaluation at the commentary budget, ahead of every other search."""
        return await self.ctx.evaluator.evaluate(
            board, self.ctx.settings.commentary_nodes, "live", who="the commentary"
        )

    async def _load_profile(self, username: str) -> None:
        """The tracked player's profile (from `profiles`; the store after a restart)."""
        key = username.lower()
        if key in self.profiles:
            return
        self.profiles[key] = await self.ctx.store.tracking.profile(key) or {}

    def _wants_speech(self, move_event: LiveMove) -> bool:
        profile = self.profiles.get(move_event.username.lower(), {})
        return bool(self.ctx.settings.speech or profile.get("speech"))

    async def _audio(self, move_event: LiveMove, comment: Comment) -> bytes | None:
        try:
            return await self.speech.speak(comment.text)
        except UpstreamUnavailable as exc:
            log.warning("speech_failed game=%s ply=%d: %s", move_event.game_id, move_event.ply, exc)
            return None

    async def _publish(
        self,
        envelope: Envelope,
        move_event: LiveMove,
        facts: MoveFacts,
        comment: Comment,
        after: EngineEval,
        audio: bytes | None,
    ) -> None:
        game_id, ply = move_event.game_id, move_event.ply
        audio_url = f"/api/live/{game_id}/audio/{ply}.wav" if audio else None
        score = after.score
        row = {
            "game_id": game_id,
            "ply": ply,
            "uci": move_event.uci,
            "san": move_event.san,
            "fen": move_event.fen,
            "text": comment.text,
            "commentator": comment.commentator,
            "fallback": comment.fallback,
            "judgment": facts.judgment,
            "best_san": facts.best_san,
            "cp": score.cp if score else None,
            "mate": score.mate if score else None,
            "white_clock": move_event.white_clock,
            "black_clock": move_event.black_clock,
            "audio": audio,
            "move_at": envelope.occurred_at,
            "created_at": datetime.fromtimestamp(self.ctx.clock.now(), UTC),
        }
        if not await self.ctx.store.commentaries.add(row):
            return  # another worker commented this ply first
        event = CommentaryPublished(
            game_id=game_id,
            ply=ply,
            san=move_event.san,
            uci=move_event.uci,
            fen=move_event.fen,
            text=comment.text,
            commentator=comment.commentator,
            fallback=comment.fallback,
            judgment=facts.judgment,
            best_san=facts.best_san,
            cp=row["cp"],
            mate=row["mate"],
            white_percent=white_percent(score),
            white=move_event.white,
            black=move_event.black,
            audio_url=audio_url,
            move_at=envelope.occurred_at,
        )
        published = await self.ctx.publisher.publish(
            topics.COMMENTARY, event, game_id, cause=envelope
        )
        log.info(
            "commentary game=%s ply=%d san=%s by=%s text=%r",
            game_id,
            move_event.ply,
            move_event.san,
            comment.commentator,
            comment.text,
        )
        COMMENTARY_LATENCY.observe(
            max(0.0, (published.occurred_at - envelope.occurred_at).total_seconds())
        )


def build(ctx: Context) -> Service:
    worker = CommentaryWorker(ctx)
    handle = by_type(
        "the commentary",
        {
            LiveMove: worker.on_move,
            ProfilePublished: worker.on_profile,
            LiveSession: worker.on_session,
        },
    )
    return Service(
        name="commentary",
        handlers={topics.LIVE_MOVES: handle, topics.PROFILES: handle, topics.LIVE_SESSIONS: handle},
        retry=RetryPolicy(max_attempts=3, base_delay=0.2, max_delay=2.0, handler_timeout=30.0),
        record_event_ids=False,  # one line per (game, ply): the natural key
        description="a line of commentary for every live move (engine text, LLM, speech)",
        component=worker,
    )
