"""The event envelope and the payload model of every event type, as JSON on the wire."""

from __future__ import annotations

import builtins
import random
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kibitz.errors import MalformedEvent


class Payload(BaseModel):
    """Base of every event payload; `event_type` and `event_version` name it on the wire."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    event_type: ClassVar[str]
    event_version: ClassVar[int] = 1


# Event ids need to be unique, not secret: a per-process generator seeded from the OS is
# several times cheaper than uuid4's system call per id (measured on the ingest path).
_ID_BITS = random.Random()


def new_event_id() -> str:
    """A random (version 4) UUID."""
    return str(uuid.UUID(int=_ID_BITS.getrandbits(128), version=4))


class Envelope(BaseModel):
    """One message of the event log: metadata plus a typed payload (kept as a dict here)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=new_event_id)
    type: str
    version: int = 1
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    correlation_id: str | None = None
    causation_id: str | None = None
    key: str
    payload: dict[str, Any]

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Envelope:
        """Parse a wire message; raises MalformedEvent with the reason."""
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise MalformedEvent(f"not an event envelope: {_first_error(exc)}") from None

    def payload_as(self, model: builtins.type[P]) -> P:
        """The payload validated as `model`; raises MalformedEvent with the reason."""
        try:
            return model.model_validate(self.payload)
        except ValidationError as exc:
            raise MalformedEvent(f"bad {self.type} payload: {_first_error(exc)}") from None


P = TypeVar("P", bound=Payload)

_REGISTRY: dict[str, type[Payload]] = {}


def register(model: type[P]) -> type[P]:
    """Class decorator: make `model` the payload of its `event_type`."""
    _REGISTRY[model.event_type] = model
    return model


def payload_model(event_type: str) -> type[Payload]:
    """The payload model registered for `event_type`; raises MalformedEvent when unknown."""
    try:
        return _REGISTRY[event_type]
    except KeyError:
        raise MalformedEvent(f"unknown event type {event_type!r}") from None


def new_event(
    payload: Payload,
    key: str,
    *,
    cause: Envelope | None = None,
    correlation_id: str | None = None,
    event_id: str | None = None,
) -> Envelope:
    """A new envelope for `payload`; a `cause` passes on its correlation id and is the causation.
    `event_id` gives an id decided earlier (an event published again after a crash keeps it)."""
    # Built without validation: every field is made here, the payload by its own model.
    return Envelope.model_construct(
        id=event_id or new_event_id(),
        type=payload.event_type,
        version=payload.event_version,
        occurred_at=datetime.now(UTC),
        key=key,
        payload=payload.model_dump(mode="json"),
        correlation_id=correlation_id or (cause.correlation_id or cause.id if cause else None),
        causation_id=cause.id if cause else None,
    )


def decode(raw: bytes) -> tuple[Envelope, Payload]:
    """Envelope and typed payload of a wire message; raises MalformedEvent."""
    envelope = Envelope.from_bytes(raw)
    return envelope, envelope.payload_as(payload_model(envelope.type))


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "message"
    return f"{where}: {err['msg']}"


# --- payloads ----------------------------------------------------------------


@register
class SyncRequested(Payload):
    event_type = "games.sync.requested"
    username: str
    sync_id: str
    source: str = "lichess"  # lichess | chesscom
    since_ms: int | None = None
    until_ms: int | None = None
    max_games: int | None = None


@register
class RawGame(Payload):
    """A game as it arrived: Lichess's NDJSON object, a chess.com archive's game object, or one
    PGN game's text."""

    event_type = "games.raw"
    source: str  # "lichess" | "chesscom" | "pgn"
    sync_id: str | None = None
    import_id: str | None = None
    index: int | None = None
    lichess_json: str | None = None  # the NDJSON line exactly as Lichess sent it
    game_json: str | None = None  # another site's game object (chess.com), as JSON text
    pgn: str | None = None


@register
class GameStored(Payload):
    event_type = "games.stored"
    game_id: str
    created: bool
    sync_id: str | None = None
    import_id: str | None = None


@register
class GameRejected(Payload):
    event_type = "games.rejected"
    reason: str
    sync_id: str | None = None
    import_id: str | None = None
    index: int | None = None


@register
class AnalysisRequested(Payload):
    event_type = "analysis.requested"
    game_id: str
    priority: str = "batch"  # interactive | batch
    force: bool = False  # analyse again even when a result exists


@register
class AnalysisProgress(Payload):
    event_type = "analysis.progress"
    game_id: str
    status: str
    phase: str
    positions_done: int
    positions_total: int


@register
class AnalysisCompleted(Payload):
    event_type = "analysis.completed"
    game_id: str
    source: str  # engine | lichess


@register
class TrackingRequested(Payload):
    """Start following a Lichess player's games (the topic path, when the tracker's own HTTP
    interface cannot be reached). Requests older than 5 minutes are ignored."""

    event_type = "tracking.requested"
    username: str
    profile: dict[str, Any] = {}


@register
class ProfilePublished(Payload):
    """What the commentary should know of a tracked player (name, rating, speech, ...)."""

    event_type = "profile.published"
    username: str
    profile: dict[str, Any] = {}


@register
class LiveSession(Payload):
    """A tracked player's game started or ended (`live.sessions`, key game id)."""

    event_type = "live.session"
    game_id: str
    username: str  # the tracked player
    state: str  # started | ended
    white: str | None = None
    black: str | None = None
    initial_fen: str | None = None
    status: str | None = None  # Lichess's status name: started, mate, resign, outoftime, ...
    result: str | None = None  # 1-0 | 0-1 | 1/2-1/2 once ended
    plies: int = 0


@register
class LiveMove(Payload):
    """One ply of a game being played (`live.moves`, key game id), in order, once each."""

    event_type = "live.move"
    game_id: str
    username: str  # the tracked player
    ply: int  # 1 = the first move
    uci: str
    san: str
    fen_before: str
    fen: str  # after the move
    white: str | None = None
    black: str | None = None
    white_clock: int | None = None  # seconds left after the move, as Lichess sends them
    black_clock: int | None = None
    initial_clock: int | None = None  # seconds each side started with, when known


@register
class CommentaryPublished(Payload):
    """One line of commentary on one ply (`commentary`, key game id)."""

    event_type = "commentary.published"
    game_id: str
    ply: int
    san: str
    uci: str
    fen: str
    text: str
    commentator: str  # engine | llm
    fallback: str | None = None  # why the LLM's line was not used, when it was configured
    judgment: str | None = None  # Inaccuracy | Mistake | Blunder
    best_san: str | None = None  # the engine's move in the position before, when different
    cp: int | None = None  # White's side, after the move
    mate: int | None = None
    white_percent: float | None = None  # White's winning chances after the move (0-100)
    white: str | None = None
    black: str | None = None
    audio_url: str | None = None
    move_at: datetime | None = None  # when the move was published (latency = occurred_at - this)


@register
class ProblemsGenerationRequested(Payload):
    """Search games for puzzles: one game, a player's analysed games, or every analysed game
    (neither given). Keyed by game id, else by player, else "all"."""

    event_type = "problems.generation.requested"
    game_id: str | None = None
    player: str | None = None
    reason: str = "requested"  # requested | pool_low | analysis_completed


@register
class ProblemsGenerated(Payload):
    """A game searched for puzzles: what was found."""

    event_type = "problems.generated"
    game_id: str
    problem_ids: list[str] = []
    candidates: int = 0
    rejected: int = 0


# --- matches (on match-events, key match id) -------------------------------------------------


@register
class MatchCreated(Payload):
    event_type = "match.created"
    match_id: str
    person: str  # the person's participant id
    rounds: int
    robots_per_round: int
    source: str  # problems | games
    positions: list[dict[str, Any]]  # [{fen, origin}] one per round


@register
class RoundStarting(Payload):
    event_type = "round.starting"
    match_id: str
    round: int


@register
class RoundRobotsNeeded(Payload):
    event_type = "round.robots_needed"
    match_id: str
    round: int
    count: int
    exclude_robots: list[str] = []


@register
class RoundStarted(Payload):
    event_type = "round.started"
    match_id: str
    round: int
    robots: list[dict[str, str]]  # [{id, identity}]
    letters: dict[str, str]  # participant id → anonymous letter
    deadline: float  # epoch seconds: answers after it are late


@register
class ResponseSubmitted(Payload):
    event_type = "response.submitted"
    match_id: str
    round: int
    participant: str
    move: str  # UCI
    reason: str


@register
class RoundVotingStarted(Payload):
    event_type = "round.voting_started"
    match_id: str
    round: int
    deadline: float


@register
class VoteSubmitted(Payload):
    event_type = "vote.submitted"
    match_id: str
    round: int
    participant: str
    letter: str


@register
class RoundCompleted(Payload):
    event_type = "round.completed"
    match_id: str
    round: int
    engine_points: dict[str, int]
    vote_points: dict[str, int]
    evaluations: dict[str, Any]  # move → {san, loss, best}


@register
class MatchCompleted(Payload):
    event_type = "match.completed"
    match_id: str
    scores: dict[str, int]
    robots: list[str] = []  # every robot that played, to release


# --- robot orchestration (on robot-orchestration-events) --------------------------------------


@register
class RoundRobotsAssigned(Payload):
    event_type = "round.robots_assigned"
    match_id: str
    round: int
    robots: list[dict[str, str]]  # [{id, identity}]


@register
class RobotInstantiated(Payload):
    event_type = "robot.instantiated"
    robot_id: str
    personality: str


@register
class RobotReleased(Payload):
    event_type = "robot.released"
    robot_id: str
    personality: str
    reason: str


@register
class RobotPoolScaled(Payload):
    event_type = "robot.pool_scaled"
    personality: str
    before: int
    after: int
    reason: str


@register
class RobotHealthCheck(Payload):
    event_type = "robot.health_check"
    robots: dict[str, int]  # state → count
    unanswered: int  # commands not yet answered by any robot worker


# --- compacted state topics: the latest state per key (seed 004) -----------------------------


@register
class MatchStateChanged(Payload):
    """A match's whole state after a change (`match-state`, key: the match id): the topic,
    compacted, keeps the latest per match, from which a view is rebuilt without the store."""

    event_type = "match.state"
    match_id: str
    status: str
    state: dict[str, Any]  # JSON of `kibitz.domain.matches.Match`, as the store keeps it


@register
class RobotStateChanged(Payload):
    """A robot instance's state after a change (`robot-pool-state`, key: the robot id)."""

    event_type = "robot.state"
    robot_id: str
    personality: str
    state: str  # idle | busy | released
    match_id: str | None = None
    round: int | None = None
    since: float  # clock seconds


# --- robot commands and replies (correlation id = the request's) ------------------------------


@register
class GenerateResponse(Payload):
    event_type = "generate.response"
    robot_id: str
    personality: str
    match_id: str
    round: int
    fen: str
    deadline: float


@register
class GenerateVote(Payload):
    event_type = "generate.vote"
    robot_id: str
    personality: str
    match_id: str
    round: int
    fen: str
    answers: dict[str, str]  # letter → move, the robot's own left out
    deadline: float


@register
class RobotAnswered(Payload):
    """A robot's reply to `generate.response` (move and reason) or `generate.vote` (letter)."""

    event_type = "robot.answered"
    robot_id: str
    match_id: str
    round: int
    kind: str  # response | vote
    move: str | None = None
    reason: str | None = None
    letter: str | None = None


@register
class Probe(Payload):
    """A no-op event used by health checks, tests and benchmarks."""

    event_type = "probe"
    n: int = 0
    note: str = ""
