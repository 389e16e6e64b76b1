"""The robot worker: answers `generate.response` and `generate.vote` commands for any robot,
in the robot's personality (its engine budget, its lines, its taste), on `robot-responses`
with the command's correlation id. Stateless: any number can run; a command whose deadline
passed is dropped (the match went on without it).
"""

from __future__ import annotations

import logging
import time

import chess

from kibitz import topics
from kibitz.domain import robots
from kibitz.domain.engine import EngineEval
from kibitz.domain.judgment import Score
from kibitz.errors import MalformedEvent
from kibitz.events import Envelope, GenerateResponse, GenerateVote, RobotAnswered
from kibitz.runtime import metrics
from kibitz.runtime.consumer import RetryPolicy
from kibitz.runtime.dispatch import by_type
from kibitz.runtime.service import Service
from kibitz.services.context import Context

log = logging.getLogger("kibitz.robot_worker")

VOTE_LINES = 8


class RobotWorker:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def handle(self, envelope: Envelope, payload: GenerateResponse | GenerateVote) -> None:
        kind = "response" if isinstance(payload, GenerateResponse) else "vote"
        try:
            outcome = await self._answer(envelope, payload)
        except Exception:
            metrics.ROBOT_ANSWERS.labels(kind, "error").inc()
            raise
        metrics.ROBOT_ANSWERS.labels(kind, outcome).inc()
        if outcome == "answered":
            waited = max(0.0, time.time() - envelope.occurred_at.timestamp())
            metrics.ROBOT_ANSWER_SECONDS.labels(kind).observe(waited)

    async def _answer(self, envelope: Envelope, payload: GenerateResponse | GenerateVote) -> str:
        """Answer the command; "answered", or why not ("late", "no_vote")."""
        if self.ctx.clock.now() > payload.deadline:
            log.info("command_too_late robot=%s match=%s", payload.robot_id, payload.match_id)
            return "late"
        personality = robots.PERSONALITIES.get(payload.personality)
        if personality is None:
            raise MalformedEvent(f"no personality {payload.personality!r}")
        board = chess.Board(payload.fen)
        seed = envelope.correlation_id or envelope.id
        if isinstance(payload, GenerateResponse):
            candidates = await self._lines(board, personality.nodes, personality.lines)
            move = robots.choose_move(personality, board, candidates, seed)
            answer = RobotAnswered(
                robot_id=payload.robot_id,
                match_id=payload.match_id,
                round=payload.round,
                kind="response",
                move=move,
                reason=robots.reason(personality, board, move, candidates),
            )
        else:
            lines = min(VOTE_LINES, board.legal_moves.count())
            candidates = await self._lines(board, personality.nodes, lines)
            letter = robots.choose_vote(personality, board, payload.answers, candidates, seed)
            if letter is None:
                return "no_vote"
            answer = RobotAnswered(
                robot_id=payload.robot_id,
                match_id=payload.match_id,
                round=payload.round,
                kind="vote",
                letter=letter,
            )
        await self.ctx.publisher.publish(
            topics.ROBOT_RESPONSES,
            answer,
            payload.match_id,
            cause=envelope,
            correlation_id=envelope.correlation_id,
        )
        return "answered"

    async def _lines(self, board: chess.Board, nodes: int, lines: int) -> list[robots.Candidate]:
        found = await self.ctx.evaluator.lines(board, nodes, lines, "robot", who="the robot worker")
        return [robots.Candidate(e.best_uci, _cp(e, board.turn)) for e in found if e.best_uci]


def _cp(found: EngineEval, turn: chess.Color) -> int:
    score = found.score or Score(cp=0)
    if turn == chess.BLACK:
        score = score.invert()
    if score.mate is not None:
        return 10_000 if score.mate > 0 else -10_000
    return score.cp or 0


def build(ctx: Context) -> Service:
    worker = RobotWorker(ctx)
    return Service(
        name="robot-worker",
        handlers={
            topics.ROBOT_COMMANDS: by_type(
                "the robot worker", {GenerateResponse: worker.handle, GenerateVote: worker.handle}
            )
        },
        retry=RetryPolicy(max_attempts=2, base_delay=0.2, max_delay=1.0, handler_timeout=30.0),
        description="robot players' moves, reasons and votes, on command",
        component=worker,
    )
