"""Guess-the-move matches: the rules, and a match's state as the fold of its events.

A match is R rounds. Each round shows a position; every participant of the round (the person
and the robots assigned to it, each under an anonymous letter that changes per round) answers
with a move and a one-line reason, then votes for the best answer other than their own.
Points per round: ENGINE_POINTS for the engine's best move or one that loses less than
ALMOST_BEST win chances (less than Lichess's inaccuracy threshold), plus one per vote received.

`apply(state, event_type, payload)` is pure and total: an event that does not fit the state
(a late or duplicate answer, a vote for oneself) leaves it unchanged. The matches service
stores what the fold gives; a replay folds the log again and must get the same state.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import chess

ENGINE_POINTS = 2
VOTE_POINTS = 1
ALMOST_BEST = 0.1  # win chances: under Lichess's inaccuracy threshold counts as best

ROUND_STATUSES = ("starting", "responding", "voting", "completed")


@dataclass
class Round:
    number: int
    fen: str
    status: str = "starting"
    robots: list[dict[str, str]] = field(default_factory=list)  # [{id, identity}]
    letters: dict[str, str] = field(default_factory=dict)  # participant id → letter
    deadline: float | None = None
    responses: dict[str, dict[str, str]] = field(default_factory=dict)  # id → {move, reason}
    votes: dict[str, str] = field(default_factory=dict)  # voter id → letter voted for
    engine_points: dict[str, int] = field(default_factory=dict)
    vote_points: dict[str, int] = field(default_factory=dict)
    evaluations: dict[str, Any] = field(default_factory=dict)  # move → {loss, best}

    def participants(self) -> list[str]:
        return sorted(self.letters)

    def by_letter(self) -> dict[str, str]:
        return {letter: pid for pid, letter in self.letters.items()}


@dataclass
class Match:
    id: str
    person: str  # the person's participant id
    rounds_total: int
    robots_per_round: int
    source: str
    positions: list[dict[str, Any]]
    status: str = "created"  # created | running | completed
    rounds: list[Round] = field(default_factory=list)
    scores: dict[str, int] = field(default_factory=dict)
    identities: dict[str, str] = field(default_factory=dict)  # robot id → personality
    ranking: list[str] = field(default_factory=list)

    def current(self) -> Round | None:
        return self.rounds[-1] if self.rounds else None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Match:
        rounds = [Round(**r) for r in data.get("rounds", [])]
        return cls(**{**data, "rounds": rounds})


def letters_for(match_id: str, number: int, participants: list[str]) -> dict[str, str]:
    """Anonymous letters for a round: a shuffle seeded by the match and the round, so they
    change every round and a replay gets the same."""
    shuffled = sorted(participants)
    random.Random(f"{match_id}:{number}").shuffle(shuffled)
    return {pid: string.ascii_uppercase[i] for i, pid in enumerate(shuffled)}


def legal_move(fen: str, uci: str) -> chess.Move | None:
    """The move if `uci` is a legal move in `fen`, else None."""
    try:
        move = chess.Move.from_uci(uci)
    except ValueError:
        return None
    return move if move in chess.Board(fen).legal_moves else None


def round_points(
    fen: str,
    responses: dict[str, dict[str, str]],
    votes: dict[str, str],
    letters: dict[str, str],
    losses: dict[str, float],
) -> tuple[dict[str, int], dict[str, int]]:
    """(engine points, vote points) per participant. `losses[uci]` is the win chances a move
    gives away against the engine's best (0 for the best)."""
    engine = {
        pid: ENGINE_POINTS if losses.get(r["move"], 1.0) < ALMOST_BEST else 0
        for pid, r in responses.items()
    }
    by_letter = {letter: pid for pid, letter in letters.items()}
    votes_won: dict[str, int] = {pid: 0 for pid in letters}
    for voter, letter in votes.items():
        target = by_letter.get(letter)
        if target is not None and target != voter and target in responses:
            votes_won[target] += VOTE_POINTS
    return engine, votes_won


def ranking(scores: dict[str, int]) -> list[str]:
    return sorted(scores, key=lambda pid: (-scores[pid], pid))


@dataclass(frozen=True)
class Standing:
    """One contender: the person, or one robot personality (all its instances together)."""

    who: str  # "you" or the personality's identity
    members: tuple[str, ...]  # participant ids
    score: int
    rounds: int  # rounds it answered in
    per_round: float


def standings(state: Match) -> list[Standing]:
    """The fair table (issue 17, item 14): each personality's instances count as one
    contender, ranked by points per round played, then by points. Ranking robot instances
    one by one put the person, who plays every round, first whatever happened."""
    groups: dict[str, list[str]] = {}
    for pid in state.scores:
        who = "you" if pid == state.person else state.identities.get(pid, "robot")
        groups.setdefault(who, []).append(pid)
    table = []
    for who, members in groups.items():
        score = sum(state.scores.get(pid, 0) for pid in members)
        rounds = sum(1 for rnd in state.rounds if any(pid in rnd.responses for pid in members))
        per_round = round(score / rounds, 2) if rounds else 0.0
        table.append(Standing(who, tuple(sorted(members)), score, rounds, per_round))
    return sorted(table, key=lambda s: (-s.per_round, -s.score, s.who))


def unanimous(current: Round) -> bool:
    """Every answer is the same move: there is nothing to vote on (issue 17, item 15)."""
    moves = {r["move"] for r in current.responses.values()}
    return len(current.responses) > 1 and len(moves) == 1


# --- the events a match is folded from (typed; `kibitz.events` carries them on the log) ------


@dataclass(frozen=True)
class Created:
    match_id: str
    person: str
    rounds: int
    robots_per_round: int
    source: str
    positions: list[dict[str, Any]]


@dataclass(frozen=True)
class Starting:
    match_id: str
    round: int


@dataclass(frozen=True)
class Started:
    match_id: str
    round: int
    robots: list[dict[str, str]]
    letters: dict[str, str]
    deadline: float


@dataclass(frozen=True)
class Responded:
    match_id: str
    round: int
    participant: str
    move: str
    reason: str


@dataclass(frozen=True)
class VotingStarted:
    match_id: str
    round: int
    deadline: float


@dataclass(frozen=True)
class Voted:
    match_id: str
    round: int
    participant: str
    letter: str


@dataclass(frozen=True)
class Scored:
    match_id: str
    round: int
    engine_points: dict[str, int]
    vote_points: dict[str, int]
    evaluations: dict[str, Any]


@dataclass(frozen=True)
class Finished:
    match_id: str
    scores: dict[str, int]
    robots: list[str] = field(default_factory=list)


MatchEvent = Created | Starting | Started | Responded | VotingStarted | Voted | Scored | Finished


def _created(state: Match | None, e: Created) -> Match | None:
    if state is not None:
        return state
    return Match(
        id=e.match_id,
        person=e.person,
        rounds_total=e.rounds,
        robots_per_round=e.robots_per_round,
        source=e.source,
        positions=list(e.positions),
        scores={e.person: 0},
    )


def _starting(state: Match, e: Starting) -> Match:
    current = state.current()
    if e.round != len(state.rounds) + 1 or e.round > state.rounds_total:
        return state
    if current is not None and current.status != "completed":
        return state
    fen = state.positions[e.round - 1]["fen"]
    return replace(state, status="running", rounds=[*state.rounds, Round(e.round, fen)])


def _finished(state: Match, e: Finished) -> Match:
    current = state.current()
    if current is None or current.status != "completed" or len(state.rounds) < state.rounds_total:
        return state
    return replace(state, status="completed", ranking=ranking(state.scores))


def _started(state: Match, current: Round, e: Started) -> Match:
    if current.status != "starting":
        return state
    robots = list(e.robots)
    started = replace(
        current, status="responding", robots=robots, letters=dict(e.letters), deadline=e.deadline
    )
    identities = {**state.identities, **{r["id"]: r["identity"] for r in robots}}
    scores = {**state.scores, **{r["id"]: state.scores.get(r["id"], 0) for r in robots}}
    return _with_round(replace(state, identities=identities, scores=scores), started)


def _responded(state: Match, current: Round, e: Responded) -> Match:
    pid = e.participant
    if current.status != "responding" or pid not in current.letters:
        return state
    if pid in current.responses or legal_move(current.fen, e.move) is None:
        return state
    responses = {**current.responses, pid: {"move": e.move, "reason": e.reason}}
    return _with_round(state, replace(current, responses=responses))


def _voting(state: Match, current: Round, e: VotingStarted) -> Match:
    if current.status != "responding":
        return state
    return _with_round(state, replace(current, status="voting", deadline=e.deadline))


def _voted(state: Match, current: Round, e: Voted) -> Match:
    pid, letter = e.participant, e.letter
    if current.status != "voting" or pid not in current.letters or pid in current.votes:
        return state
    if current.letters.get(pid) == letter or letter not in current.by_letter():
        return state
    if current.by_letter()[letter] not in current.responses:
        return state
    return _with_round(state, replace(current, votes={**current.votes, pid: letter}))


def _scored(state: Match, current: Round, e: Scored) -> Match:
    if current.status not in ("responding", "voting"):
        return state
    engine, votes = dict(e.engine_points), dict(e.vote_points)
    done = replace(
        current,
        status="completed",
        engine_points=engine,
        vote_points=votes,
        evaluations=dict(e.evaluations),
        deadline=None,
    )
    scores = dict(state.scores)
    for pid in set(engine) | set(votes):
        scores[pid] = scores.get(pid, 0) + engine.get(pid, 0) + votes.get(pid, 0)
    return _with_round(replace(state, scores=scores), done)


# Each event of the current round, by its type.
_ROUND_RULES: dict[type, Callable[[Match, Round, Any], Match]] = {
    Started: _started,
    Responded: _responded,
    VotingStarted: _voting,
    Voted: _voted,
    Scored: _scored,
}


def apply(state: Match | None, event: MatchEvent) -> Match | None:
    """The state after one event; unchanged when the event does not fit (redelivered, late,
    duplicate or out of turn)."""
    if isinstance(event, Created):
        return _created(state, event)
    if state is None or state.status == "completed":
        return state
    if isinstance(event, Starting):
        return _starting(state, event)
    if isinstance(event, Finished):
        return _finished(state, event)
    current = state.current()
    if current is None or event.round != current.number:
        return state
    return _ROUND_RULES[type(event)](state, current, event)


def _with_round(state: Match, updated: Round) -> Match:
    return replace(state, rounds=[*state.rounds[:-1], updated])


def fold(events: list[MatchEvent]) -> Match | None:
    """The state of a match from its events, in log order."""
    state: Match | None = None
    for event in events:
        state = apply(state, event)
    return state
