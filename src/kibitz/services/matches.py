"""The matches service: a match's lifecycle, rounds, deadlines and scores.

Everything that happens to a match is an event on `match-events` (key: the match id), and its
stored state is the fold of those events (`kibitz.domain.matches.apply`), written only here.
Decisions are events too: when a fold changes the state, the service publishes what follows
(the next round, the call for robots, the commands to them, the vote, the scores), then
stores the state. A redelivered event changes nothing and so decides nothing; a decision
published twice (after a crash between publishing and storing) is ignored by the fold. The
robots' assignments (`robot-orchestration-events`) and replies (`robot-responses`) are turned
into match events, and a deadline loop closes the phases nobody finished in time: a robot
that does not answer is skipped and the round goes on.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from typing import Any

import chess

from kibitz import topics
from kibitz.domain import matches as rules
from kibitz.domain.puzzles import pov, win_chances
from kibitz.errors import Conflict, InvalidInput, MalformedEvent, NotFound
from kibitz.events import (
    Envelope,
    GenerateResponse,
    GenerateVote,
    MatchCompleted,
    MatchCreated,
    MatchStateChanged,
    Payload,
    ResponseSubmitted,
    RobotAnswered,
    RobotHealthCheck,
    RobotInstantiated,
    RobotPoolScaled,
    RobotReleased,
    RoundCompleted,
    RoundRobotsAssigned,
    RoundRobotsNeeded,
    RoundStarted,
    RoundStarting,
    RoundVotingStarted,
    VoteSubmitted,
)
from kibitz.runtime import metrics
from kibitz.runtime.dispatch import by_type
from kibitz.runtime.service import Service
from kibitz.services.context import Context

WHO = "the match scoring"
log = logging.getLogger("kibitz.matches")

DEADLINE_TICK = 0.25  # seconds between deadline checks


class StateBehind(Exception):
    """The stored match has not caught up with an event that follows from it yet: the fold
    publishes what a change decides before it stores the change (a crash in between publishes
    again), so an answer to that decision can arrive first. The consumer tries it again after
    its backoff (0.5 s, then 1 s, 2 s), by which time the change is stored."""


class MatchesWorker:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        # (match, round) → when this process saw it start: its duration once scored (a round
        # that started before this process did is not measured).
        self._round_started: dict[tuple[str, int], float] = {}

    async def on_logged(self, envelope: Envelope, payload: Payload) -> None:
        """A match event from the log: fold it (as its domain event)."""
        await self.on_match_event(envelope, to_domain(payload))

    # --- the fold and what follows from it ---

    async def on_match_event(self, envelope: Envelope, event: rules.MatchEvent) -> None:
        row = await self.ctx.store.matches.state(event.match_id)
        before = rules.Match.from_json(row) if row is not None else None
        after = rules.apply(before, event)
        if after is None or after == before:
            return  # redelivered, late, duplicate or out of turn: nothing changes
        await self.decide(envelope, event, after)
        # The whole new state to the compacted `match-state`, before the store as decisions
        # are: after a crash in between, the redelivered event folds to it and publishes again.
        state = after.to_json()
        changed = MatchStateChanged(match_id=after.id, status=after.status, state=state)
        await self.ctx.publisher.publish(topics.MATCH_STATE, changed, after.id, cause=envelope)
        await self.ctx.store.matches.save(
            after.id, after.person, after.status, state, self.ctx.clock.now()
        )
        self._measure(event, after)

    def _measure(self, event: rules.MatchEvent, state: rules.Match) -> None:
        """The metrics of a change just stored: matches created and completed, round time."""
        if isinstance(event, rules.Created):
            metrics.MATCHES.labels("created").inc()
        elif isinstance(event, rules.Finished):
            metrics.MATCHES.labels("completed").inc()
        current = state.current()
        if current is None:
            return
        key = (state.id, current.number)
        if isinstance(event, rules.Started):
            self._round_started[key] = time.monotonic()
        elif isinstance(event, rules.Scored) and key in self._round_started:
            metrics.ROUND_SECONDS.observe(time.monotonic() - self._round_started.pop(key))

    async def decide(self, cause: Envelope, event: rules.MatchEvent, state: rules.Match) -> None:
        """Publish what follows from the state `event` just produced."""
        current = state.current()
        if isinstance(event, rules.Created):
            await self._publish(RoundStarting(match_id=state.id, round=1), state.id, cause)
        elif current is None:
            return
        elif isinstance(event, rules.Starting):
            previous = state.rounds[-2].robots if len(state.rounds) > 1 else []
            await self._publish(
                RoundRobotsNeeded(
                    match_id=state.id,
                    round=current.number,
                    count=state.robots_per_round,
                    exclude_robots=[r["id"] for r in previous],
                ),
                state.id,
                cause,
            )
        elif isinstance(event, rules.Started):
            await self._command_responses(cause, state, current)
        elif isinstance(event, rules.Responded):
            if set(current.responses) >= set(current.letters):
                await self.start_voting(cause, state)
        elif isinstance(event, rules.VotingStarted):
            await self._command_votes(cause, state, current)
        elif isinstance(event, rules.Voted):
            voters = {pid for pid in current.letters if _can_vote(current, pid)}
            if set(current.votes) >= voters:
                await self.complete_round(cause, state)
        elif isinstance(event, rules.Scored):
            await self._next_round_or_end(cause, state, current)

    async def _next_round_or_end(
        self, cause: Envelope, state: rules.Match, current: rules.Round
    ) -> None:
        if current.number < state.rounds_total:
            await self._publish(
                RoundStarting(match_id=state.id, round=current.number + 1), state.id, cause
            )
            return
        robots = sorted({r["id"] for rnd in state.rounds for r in rnd.robots})
        await self._publish(
            MatchCompleted(match_id=state.id, scores=state.scores, robots=robots), state.id, cause
        )

    async def _publish(self, payload: Payload, key: str, cause: Envelope | None) -> None:
        await self.ctx.publisher.publish(topics.MATCH_EVENTS, payload, key, cause=cause)

    async def on_assigned(self, envelope: Envelope, assigned: RoundRobotsAssigned) -> None:
        """The pool answered: the round starts with the person and these robots."""
        row = await self.ctx.store.matches.state(assigned.match_id)
        state = rules.Match.from_json(row) if row is not None else None
        current = state.current() if state is not None else None
        if state is None or current is None or current.number < assigned.round:
            raise StateBehind(
                f"match {assigned.match_id}: round {assigned.round} assigned before it is stored"
            )
        if current.number != assigned.round or current.status != "starting":
            return  # late or redelivered: that round has started already, or the match ended
        participants = [state.person, *(r["id"] for r in assigned.robots)]
        deadline = self.ctx.clock.now() + self.ctx.settings.match_response_seconds
        await self._publish(
            RoundStarted(
                match_id=state.id,
                round=assigned.round,
                robots=list(assigned.robots),
                letters=rules.letters_for(state.id, assigned.round, participants),
                deadline=deadline,
            ),
            state.id,
            envelope,
        )

    async def on_answer(self, envelope: Envelope, answer: RobotAnswered) -> None:
        """A robot's reply becomes the match event it stands for (the fold judges it)."""
        if answer.kind == "response" and answer.move:
            event: Payload = ResponseSubmitted(
                match_id=answer.match_id,
                round=answer.round,
                participant=answer.robot_id,
                move=answer.move,
                reason=answer.reason or "",
            )
        elif answer.kind == "vote" and answer.letter:
            event = VoteSubmitted(
                match_id=answer.match_id,
                round=answer.round,
                participant=answer.robot_id,
                letter=answer.letter,
            )
        else:
            raise MalformedEvent(f"a robot answer without a move or a letter: {answer}")
        await self._publish(event, answer.match_id, envelope)

    async def _command_responses(
        self, cause: Envelope, state: rules.Match, current: rules.Round
    ) -> None:
        assert current.deadline is not None
        commands = [
            (
                GenerateResponse(
                    robot_id=robot["id"],
                    personality=state.identities[robot["id"]],
                    match_id=state.id,
                    round=current.number,
                    fen=current.fen,
                    deadline=current.deadline,
                ),
                robot["id"],
            )
            for robot in current.robots
        ]
        await self._commands(cause, state, current, "response", commands)

    async def _command_votes(
        self, cause: Envelope, state: rules.Match, current: rules.Round
    ) -> None:
        assert current.deadline is not None
        answers = {current.letters[pid]: r["move"] for pid, r in current.responses.items()}
        commands = []
        for robot in current.robots:
            own = current.letters.get(robot["id"])
            mine = {letter: move for letter, move in answers.items() if letter != own}
            if not mine:
                continue
            commands.append(
                (
                    GenerateVote(
                        robot_id=robot["id"],
                        personality=state.identities[robot["id"]],
                        match_id=state.id,
                        round=current.number,
                        fen=current.fen,
                        answers=mine,
                        deadline=current.deadline,
                    ),
                    robot["id"],
                )
            )
        await self._commands(cause, state, current, "vote", commands)

    async def _commands(
        self,
        cause: Envelope,
        state: rules.Match,
        current: rules.Round,
        kind: str,
        commands: list[tuple[Any, str]],
    ) -> None:
        for payload, robot_id in commands:
            # The reply repeats the correlation id: match, round, robot and what was asked.
            await self.ctx.publisher.publish(
                topics.ROBOT_COMMANDS,
                payload,
                robot_id,
                cause=cause,
                correlation_id=f"{state.id}:{current.number}:{robot_id}:{kind}",
            )

    async def start_voting(self, cause: Envelope | None, state: rules.Match) -> None:
        """Open the vote; when every answer is the same move there is nothing to vote on, and
        the round is scored at once."""
        current = state.current()
        assert current is not None
        if rules.unanimous(current):
            await self.complete_round(cause, state)
            return
        deadline = self.ctx.clock.now() + self.ctx.settings.match_vote_seconds
        await self._publish(
            RoundVotingStarted(match_id=state.id, round=current.number, deadline=deadline),
            state.id,
            cause,
        )

    async def complete_round(self, cause: Envelope | None, state: rules.Match) -> None:
        """Score the answers with the engine and publish the round's result."""
        current = state.current()
        assert current is not None
        evaluations = await self.evaluate(
            current.fen, [r["move"] for r in current.responses.values()]
        )
        losses = {move: e["loss"] for move, e in evaluations.items()}
        engine, votes = rules.round_points(
            current.fen, current.responses, current.votes, current.letters, losses
        )
        await self._publish(
            RoundCompleted(
                match_id=state.id,
                round=current.number,
                engine_points=engine,
                vote_points=votes,
                evaluations=evaluations,
            ),
            state.id,
            cause,
        )

    async def evaluate(self, fen: str, moves: list[str]) -> dict[str, Any]:
        """Per distinct move: its SAN, the engine's best move, and the win chances it gives
        away against it (mover's point of view)."""
        board = chess.Board(fen)
        nodes = self.ctx.settings.match_nodes
        best = await self.ctx.evaluator.evaluate(board, nodes, "match", who=WHO)
        mover = board.turn
        best_chances = win_chances(pov(best.score, mover)) if best.score else 0.0
        out: dict[str, Any] = {}
        for uci in dict.fromkeys(moves):
            move = chess.Move.from_uci(uci)
            if uci == best.best_uci:
                out[uci] = {"san": board.san(move), "loss": 0.0, "best": best.best_uci}
                continue
            after = board.copy(stack=False)
            after.push(move)
            found = await self.ctx.evaluator.evaluate(after, nodes, "match", who=WHO)
            if found.score is None:  # the game ends: mate is the best there is
                chances = 1.0 if after.is_checkmate() else 0.0
            else:
                chances = win_chances(pov(found.score, mover))
            loss = round(max(0.0, best_chances - chances), 4)
            out[uci] = {"san": board.san(move), "loss": loss, "best": best.best_uci}
        return out

    # --- deadlines ---

    async def deadlines(self) -> None:
        """Close every phase whose deadline passed: answers → votes → scores."""
        now = self.ctx.clock.now()
        rows = await self.ctx.store.matches.running()
        metrics.MATCHES_ACTIVE.set(len(rows))
        for row in rows:
            state = rules.Match.from_json(row)
            current = state.current()
            if current is None or current.deadline is None or current.deadline > now:
                continue
            if current.status == "responding":
                await self.start_voting(None, state)
            elif current.status == "voting":
                await self.complete_round(None, state)


# The log's match events and the domain's typed events they are folded as.
TO_DOMAIN: dict[type[Payload], type[rules.MatchEvent]] = {
    MatchCreated: rules.Created,
    RoundStarting: rules.Starting,
    RoundStarted: rules.Started,
    ResponseSubmitted: rules.Responded,
    RoundVotingStarted: rules.VotingStarted,
    VoteSubmitted: rules.Voted,
    RoundCompleted: rules.Scored,
    MatchCompleted: rules.Finished,
}


def to_domain(payload: Payload) -> rules.MatchEvent:
    """The domain event a match event payload carries."""
    kind = TO_DOMAIN[type(payload)]
    data = payload.model_dump()
    names = {f.name for f in dataclasses.fields(kind)}
    return kind(**{k: v for k, v in data.items() if k in names})


def _can_vote(current: rules.Round, pid: str) -> bool:
    """Someone can vote when another participant answered."""
    return any(other != pid for other in current.responses)


# --- requests (API, CLI) ---------------------------------------------------------------------

SOURCES = ("problems", "games")


async def create_match(
    ctx: Context,
    *,
    rounds: int,
    robots_per_round: int,
    source: str,
    player: str | None = None,
    person: str = "you",
) -> dict[str, Any]:
    """Choose the positions and announce the match; InvalidInput when there are too few."""
    if source not in SOURCES:
        raise InvalidInput(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
    if source == "games" and not player:
        raise InvalidInput("source 'games' needs the player whose games to use")
    positions = await ctx.store.matches.positions(source, player, rounds)
    if len(positions) < rounds:
        where = f"{player}'s analysed games" if source == "games" else "the problem pool"
        raise InvalidInput(
            f"{where} hold{'s' if source != 'games' else ''} {len(positions)} usable "
            f"positions; {rounds} rounds need {rounds}"
        )
    match_id = str(uuid.uuid4())
    await ctx.publisher.publish(
        topics.MATCH_EVENTS,
        MatchCreated(
            match_id=match_id,
            person=f"person:{person}",
            rounds=rounds,
            robots_per_round=robots_per_round,
            source=source,
            positions=positions,
        ),
        match_id,
    )
    return {"id": match_id, "status": "created", "rounds": rounds}


async def submit_response(
    ctx: Context, match_id: str, number: int, move: str, reason: str
) -> dict[str, Any]:
    """The person's answer, checked against the stored state, then published."""
    state, current = await _round_for(ctx, match_id, number, "responding")
    if state.person in current.responses:
        raise Conflict(f"you already answered round {number}")
    move = _as_uci(current.fen, move)
    if not reason.strip():
        raise InvalidInput("reason: say in one line why")
    answer = ResponseSubmitted(
        match_id=match_id, round=number, participant=state.person, move=move, reason=reason
    )
    await _submit_once(ctx, answer, "response", f"you already answered round {number}")
    return {"match": match_id, "round": number, "status": "accepted"}


async def _submit_once(
    ctx: Context, payload: ResponseSubmitted | VoteSubmitted, kind: str, refusal: str
) -> None:
    """Publish the person's answer or vote if it is their first in the round, claimed in the
    store first: of two sent at once, one is accepted and the other gets 409 (issue 17,
    item 13). A claim whose event cannot be published is taken back."""
    matches = ctx.store.matches
    if not await matches.claim(payload.match_id, payload.round, payload.participant, kind):
        raise Conflict(refusal)
    try:
        await ctx.publisher.publish(topics.MATCH_EVENTS, payload, payload.match_id)
    except BaseException:
        await matches.unclaim(payload.match_id, payload.round, payload.participant, kind)
        raise


def _as_uci(fen: str, text: str) -> str:
    """A legal move given in UCI (e2e4) or SAN (e4, Nf3, O-O), as UCI; InvalidInput else."""
    text = text.strip()
    if rules.legal_move(fen, text) is not None:
        return text
    try:
        return chess.Board(fen).parse_san(text).uci()
    except ValueError:
        raise InvalidInput(f"move: {text!r} is not a legal move here ({fen})") from None


async def submit_vote(ctx: Context, match_id: str, number: int, letter: str) -> dict[str, Any]:
    state, current = await _round_for(ctx, match_id, number, "voting")
    if state.person in current.votes:
        raise Conflict(f"you already voted in round {number}")
    letter = letter.strip().upper()
    if letter == current.letters.get(state.person):
        raise InvalidInput("you cannot vote for your own answer")
    target = current.by_letter().get(letter)
    if target is None or target not in current.responses:
        answered = sorted(current.letters[p] for p in current.responses if p != state.person)
        raise InvalidInput(
            f"identity: no answer under {letter!r}; vote for one of {', '.join(answered) or '-'}"
        )
    vote = VoteSubmitted(match_id=match_id, round=number, participant=state.person, letter=letter)
    await _submit_once(ctx, vote, "vote", f"you already voted in round {number}")
    return {"match": match_id, "round": number, "status": "accepted"}


async def _round_for(
    ctx: Context, match_id: str, number: int, phase: str
) -> tuple[rules.Match, rules.Round]:
    raw = await ctx.store.matches.state(match_id)
    if raw is None:
        raise NotFound(f"no match {match_id!r}")
    state = rules.Match.from_json(raw)
    current = state.current()
    if current is None or number != current.number:
        now = current.number if current else 0
        raise Conflict(f"round {number} is not the current round (round {now})")
    if current.status != phase:
        raise Conflict(f"round {number} is {current.status}, not {phase}: too late or too early")
    if current.deadline is not None and ctx.clock.now() > current.deadline:
        raise Conflict(f"round {number}'s time for this is up")
    return state, current


def replay(payloads: list[Payload]) -> dict[str, Any] | None:
    """A match's state rebuilt from its events alone."""
    state = rules.fold([to_domain(p) for p in payloads if type(p) in TO_DOMAIN])
    return state.to_json() if state is not None else None


def build(ctx: Context) -> Service:
    worker = MatchesWorker(ctx)
    handle = by_type(
        "the matches service",
        {
            RoundRobotsAssigned: worker.on_assigned,
            RobotAnswered: worker.on_answer,
            **dict.fromkeys(TO_DOMAIN, worker.on_logged),
        },
        # the pool's own news and requests
        ignore=(
            RoundRobotsNeeded,
            RobotInstantiated,
            RobotReleased,
            RobotPoolScaled,
            RobotHealthCheck,
        ),
    )

    async def deadline_loop() -> None:
        while True:
            try:
                await worker.deadlines()
            except Exception as exc:  # the store may be briefly unreachable; try again
                log.warning("deadline_check_failed error=%s", exc)
            await ctx.clock.sleep(DEADLINE_TICK)

    return Service(
        name="matches",
        handlers={
            topics.MATCH_EVENTS: handle,
            topics.ROBOT_EVENTS: handle,
            topics.ROBOT_RESPONSES: handle,
        },
        loops=[deadline_loop],
        record_event_ids=False,  # the fold is idempotent: a redelivered event changes nothing
        description="guess-the-move matches: rounds, deadlines, votes, scores",
        component=worker,
    )
