"""The relational schema (SQLAlchemy 2 declarative); changed only through Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, synonym


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Player(Base):
    __tablename__ = "players"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # lower-case username
    name: Mapped[str] = mapped_column(String(64))
    followed: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    last_synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Game(Base):
    __tablename__ = "games"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    source: Mapped[str] = mapped_column(String(16))  # lichess | pgn
    white_id: Mapped[str | None] = mapped_column(String(64))
    black_id: Mapped[str | None] = mapped_column(String(64))
    white_name: Mapped[str | None] = mapped_column(String(64))
    black_name: Mapped[str | None] = mapped_column(String(64))
    white_rating: Mapped[int | None] = mapped_column(Integer)
    black_rating: Mapped[int | None] = mapped_column(Integer)
    result: Mapped[str] = mapped_column(String(8), default="*")
    status: Mapped[str | None] = mapped_column(String(32))
    winner: Mapped[str | None] = mapped_column(String(8))
    rated: Mapped[bool | None] = mapped_column(Boolean)
    variant: Mapped[str] = mapped_column(String(32), default="standard")
    speed: Mapped[str | None] = mapped_column(String(32))
    perf: Mapped[str | None] = mapped_column(String(32))
    opening_eco: Mapped[str | None] = mapped_column(String(8))
    opening_name: Mapped[str | None] = mapped_column(String(200))
    opening_ply: Mapped[int | None] = mapped_column(Integer)
    clock_initial: Mapped[int | None] = mapped_column(Integer)  # seconds
    clock_increment: Mapped[int | None] = mapped_column(Integer)
    initial_fen: Mapped[str | None] = mapped_column(String(100))
    moves_uci: Mapped[str] = mapped_column(Text, default="")
    moves_san: Mapped[str] = mapped_column(Text, default="")
    ply_count: Mapped[int] = mapped_column(Integer, default=0)
    clocks_cs: Mapped[list[Any] | None] = mapped_column(JSON)  # remaining centiseconds per ply
    server_analysis: Mapped[list[Any] | None] = mapped_column(JSON)  # Lichess per-ply evals
    player_analysis: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # acpl, accuracy…
    pgn_evals: Mapped[list[Any] | None] = mapped_column(JSON)  # [%eval] comments of a PGN
    headers: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    raw_json: Mapped[str | None] = mapped_column(Text)  # Lichess's NDJSON line, verbatim
    pgn: Mapped[str | None] = mapped_column(Text)
    played_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    played_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Sync(Base):
    """One run of a player's sync from Lichess, or of one PGN import."""

    __tablename__ = "syncs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # lichess | pgn
    username: Mapped[str | None] = mapped_column(String(64), index=True)
    filename: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    games_received: Mapped[int] = mapped_column(Integer, default=0)
    games_stored: Mapped[int] = mapped_column(Integer, default=0)
    games_created: Mapped[int] = mapped_column(Integer, default=0)
    games_rejected: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[list[Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    notice: Mapped[str | None] = mapped_column(String(300))  # what a running sync waits for
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SyncGame(Base):
    """Which games a sync delivered: counts stay exact under at-least-once delivery."""

    __tablename__ = "sync_games"

    sync_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    game_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created: Mapped[bool] = mapped_column(Boolean, default=False)


class SyncEntry(Base):
    """Each game of a sync or import, by its index, counted once (stored or rejected) however
    often it is delivered; a game twice in one file is counted twice, as the file has it."""

    __tablename__ = "sync_entries"

    sync_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)


class ProcessedEvent(Base):
    __tablename__ = "processed_events"

    consumer_group: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Lock(Base):
    """Named leases: the deployment-wide Lichess request lock lives here."""

    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(100))
    expires_at: Mapped[float] = mapped_column(Float, default=0.0)
    not_before: Mapped[float] = mapped_column(Float, default=0.0)  # e.g. 60 s after a 429
    lease_owner = synonym("holder")  # the one lease mechanism's names (adapters.lease_sql)
    lease_until = synonym("expires_at")


class PositionEval(Base):
    """The evaluation cache: one engine result per position (EPD) and node budget."""

    __tablename__ = "position_evals"

    epd: Mapped[str] = mapped_column(String(100), primary_key=True)
    nodes: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    cp: Mapped[int | None] = mapped_column(Integer)  # White's side
    mate: Mapped[int | None] = mapped_column(Integer)
    best_uci: Mapped[str | None] = mapped_column(String(8))
    pv_uci: Mapped[str | None] = mapped_column(Text)
    depth: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Analysis(Base):
    """A game's analysis job: its lane, phase, progress and lease (one worker at a time)."""

    __tablename__ = "analyses"

    game_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    phase: Mapped[str] = mapped_column(String(8), default="quick")  # quick | deep
    priority: Mapped[str] = mapped_column(String(16), default="batch")
    source: Mapped[str | None] = mapped_column(String(16))  # engine | lichess
    positions_done: Mapped[int] = mapped_column(Integer, default=0)
    positions_total: Mapped[int] = mapped_column(Integer, default=0)
    quick_nodes: Mapped[int | None] = mapped_column(BigInteger)
    deep_nodes: Mapped[int | None] = mapped_column(BigInteger)
    # The deep pass ran at the lower budget because interactive requests were waiting.
    degraded: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The starting position's score (White's side) in the stored phase; None when reused.
    start_cp: Mapped[int | None] = mapped_column(Integer)
    start_mate: Mapped[int | None] = mapped_column(Integer)
    engine: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[float] = mapped_column(Float, default=0.0)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    quick_done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Written with status "done" in one transaction, cleared once `analysis.completed` is
    # published under this id: a crash in between publishes it at the request's redelivery.
    completion_event_id: Mapped[str | None] = mapped_column(String(36))


class MoveEval(Base):
    """The evaluation after each ply of a game, per phase."""

    __tablename__ = "move_evals"

    game_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    phase: Mapped[str] = mapped_column(String(8), primary_key=True)
    ply: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1 = after the first move
    cp: Mapped[int | None] = mapped_column(Integer)
    mate: Mapped[int | None] = mapped_column(Integer)
    best_uci: Mapped[str | None] = mapped_column(String(8))  # best in the position before
    line_san: Mapped[str | None] = mapped_column(Text)
    nodes: Mapped[int | None] = mapped_column(BigInteger)
    cached: Mapped[bool] = mapped_column(Boolean, default=False)


class PluginResult(Base):
    """One result per game, plugin and plugin version (the deep phase replaces the quick)."""

    __tablename__ = "plugin_results"

    game_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    plugin: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    phase: Mapped[str] = mapped_column(String(8))
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TrackedPlayer(Base):
    """A player the tracker follows: one row per player, leased by the tracker process that
    follows them (so no player is tracked twice in the deployment)."""

    __tablename__ = "tracked_players"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)  # lower case
    name: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)  # waiting | live | ended
    game_id: Mapped[str | None] = mapped_column(String(32))
    profile: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    owner: Mapped[str | None] = mapped_column(String(100))
    lease_owner = synonym("owner")  # the one lease mechanism's name for it (adapters.lease_sql)
    lease_until: Mapped[float] = mapped_column(Float, default=0.0)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_reason: Mapped[str | None] = mapped_column(String(200))


class TrackingSession(Base):
    """One game followed live: who played, how far it got, how it ended."""

    __tablename__ = "tracking_sessions"

    game_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)  # the tracked player
    white: Mapped[str | None] = mapped_column(String(64))
    black: Mapped[str | None] = mapped_column(String(64))
    initial_fen: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(32))  # Lichess's status name
    result: Mapped[str | None] = mapped_column(String(8))
    last_ply: Mapped[int] = mapped_column(Integer, default=0)  # plies published to live.moves
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Commentary(Base):
    """One commentary line per ply of a live game (the natural key keeps it to one)."""

    __tablename__ = "commentary"

    game_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    ply: Mapped[int] = mapped_column(Integer, primary_key=True)
    uci: Mapped[str] = mapped_column(String(8))
    san: Mapped[str] = mapped_column(String(12))
    fen: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    commentator: Mapped[str] = mapped_column(String(16))
    fallback: Mapped[str | None] = mapped_column(String(200))
    judgment: Mapped[str | None] = mapped_column(String(16))
    best_san: Mapped[str | None] = mapped_column(String(12))
    cp: Mapped[int | None] = mapped_column(Integer)
    mate: Mapped[int | None] = mapped_column(Integer)
    white_clock: Mapped[int | None] = mapped_column(Integer)
    black_clock: Mapped[int | None] = mapped_column(Integer)
    audio: Mapped[bytes | None] = mapped_column(LargeBinary)  # WAV from espeak-ng
    move_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Problem(Base):
    """A puzzle from a game: the position before the blunder, the blunder, the solution.

    Served least recently served first (`last_served_at`, never-served first); the id is the
    game and the blunder's ply, so generating a game twice stores it once."""

    __tablename__ = "problems"

    id: Mapped[str] = mapped_column(String(48), primary_key=True)  # "{game_id}-{ply}"
    game_id: Mapped[str] = mapped_column(String(32), index=True)
    ply: Mapped[int] = mapped_column(Integer)  # the blunder's ply (1-based)
    fen: Mapped[str] = mapped_column(String(100))  # the position before the blunder
    blunder_uci: Mapped[str] = mapped_column(String(8))
    solution: Mapped[list[Any]] = mapped_column(JSON)  # UCI moves after the blunder
    kind: Mapped[str] = mapped_column(String(16))  # mate | advantage
    themes: Mapped[list[Any]] = mapped_column(JSON)
    rating: Mapped[int] = mapped_column(Integer)  # estimated difficulty
    solver_color: Mapped[str] = mapped_column(String(8))  # white | black
    white_id: Mapped[str | None] = mapped_column(String(64), index=True)
    black_id: Mapped[str | None] = mapped_column(String(64), index=True)
    final_cp: Mapped[int | None] = mapped_column(Integer)  # solver's side, end of the line
    final_mate: Mapped[int | None] = mapped_column(Integer)
    generator_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_served_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    served_count: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    successes: Mapped[int] = mapped_column(Integer, default=0)
    # Glicko-2, moved by every solver's first attempt (None: never rated, `rating` is the start)
    glicko_rating: Mapped[float | None] = mapped_column(Float)
    glicko_rd: Mapped[float | None] = mapped_column(Float)
    glicko_vol: Mapped[float | None] = mapped_column(Float)
    rated_plays: Mapped[int] = mapped_column(Integer, default=0)


class ProblemTheme(Base):
    """One row per (problem, theme): filtering and counting by theme on both databases."""

    __tablename__ = "problem_themes"

    problem_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    theme: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)


class ProblemScan(Base):
    """A game searched for puzzles by one version of the generator (scanned once)."""

    __tablename__ = "problem_scans"

    game_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    candidates: Mapped[int] = mapped_column(Integer, default=0)
    problems: Mapped[int] = mapped_column(Integer, default=0)
    searches: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[list[Any] | None] = mapped_column(JSON)  # [{ply, reason}]
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    scanned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Worker(Base):
    """A service process's heartbeat: it is alive while `last_seen` is recent."""

    __tablename__ = "workers"

    consumer_group: Mapped[str] = mapped_column(String(80), primary_key=True)
    worker: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_seen: Mapped[float] = mapped_column(Float)


class MatchSubmission(Base):
    """A participant's answer or vote in a round, claimed once: the second is refused (409)."""

    __tablename__ = "match_submissions"

    match_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    round: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant: Mapped[str] = mapped_column(String(80), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # response | vote


class MatchRow(Base):
    """A match's state as the fold of its events (`kibitz.domain.matches`)."""

    __tablename__ = "matches"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    person: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(16), index=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    events_applied: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Robot(Base):
    """A robot instance of the pool: idle, busy (in a match's round) or released."""

    __tablename__ = "robots"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    personality: Mapped[str] = mapped_column(String(32), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)  # idle | busy | released
    match_id: Mapped[str | None] = mapped_column(String(36))
    round: Mapped[int | None] = mapped_column(Integer)
    state_since: Mapped[float] = mapped_column(Float)  # clock seconds
    created_at: Mapped[float] = mapped_column(Float)


class RobotAssignment(Base):
    """Which robots play a round (the natural key makes assignment idempotent)."""

    __tablename__ = "robot_assignments"

    match_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    round: Mapped[int] = mapped_column(Integer, primary_key=True)
    robot_id: Mapped[str] = mapped_column(String(40), primary_key=True)


class TrainingCard(Base):
    """A card of a player's training: one of their mistakes (the position before it) or a
    puzzle of their games, with its FSRS state and due time."""

    __tablename__ = "training_cards"

    id: Mapped[str] = mapped_column(String(120), primary_key=True)  # player:game:ply | player:p:id
    player_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))  # mistake | puzzle
    game_id: Mapped[str] = mapped_column(String(32))
    ply: Mapped[int] = mapped_column(Integer)  # the move asked for (1-based)
    problem_id: Mapped[str | None] = mapped_column(String(48))
    fen: Mapped[str] = mapped_column(String(100))  # the position to answer in
    played_uci: Mapped[str | None] = mapped_column(String(8))  # the mistake (mistake cards)
    best_uci: Mapped[str | None] = mapped_column(String(8))
    judgment: Mapped[str | None] = mapped_column(String(16))
    loss: Mapped[float | None] = mapped_column(Float)
    schedule: Mapped[dict[str, Any]] = mapped_column(JSON)  # fsrs.Card.to_dict()
    due: Mapped[float] = mapped_column(Float)
    reviews: Mapped[int] = mapped_column(Integer, default=0)
    lapses: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[float] = mapped_column(Float)
    last_review: Mapped[float | None] = mapped_column(Float)


class CardAnswer(Base):
    """A move answered to a card, as the engine checked it once: asked again, it is known."""

    __tablename__ = "card_answers"

    card_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    move_uci: Mapped[str] = mapped_column(String(8), primary_key=True)
    correct: Mapped[bool] = mapped_column(Boolean)
    loss: Mapped[float | None] = mapped_column(Float)


class CardReview(Base):
    """Each answer given to a card (FSRS's review log)."""

    __tablename__ = "card_reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    card_id: Mapped[str] = mapped_column(String(120), index=True)
    player_id: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[float] = mapped_column(Float)
    move_uci: Mapped[str] = mapped_column(String(8))
    correct: Mapped[bool] = mapped_column(Boolean)
    due_after: Mapped[float] = mapped_column(Float)


class TrainingScan(Base):
    """A game whose mistakes were made cards for one player (scanned once)."""

    __tablename__ = "training_scans"

    player_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    game_id: Mapped[str] = mapped_column(String(32), primary_key=True)


class Solver(Base):
    """A player's puzzle rating (Glicko-2) and best streak."""

    __tablename__ = "solvers"

    player_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    rating: Mapped[float] = mapped_column(Float)
    rd: Mapped[float] = mapped_column(Float)
    vol: Mapped[float] = mapped_column(Float)
    rated_attempts: Mapped[int] = mapped_column(Integer, default=0)
    best_streak: Mapped[int] = mapped_column(Integer, default=0)


class PuzzleAttempt(Base):
    """A solver's attempt at a puzzle (the first one is rated): the dashboard's rows."""

    __tablename__ = "puzzle_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    player_id: Mapped[str] = mapped_column(String(64))
    problem_id: Mapped[str] = mapped_column(String(48))
    at: Mapped[float] = mapped_column(Float)
    solved: Mapped[bool] = mapped_column(Boolean)
    first: Mapped[bool] = mapped_column(Boolean)
    puzzle_rating: Mapped[float] = mapped_column(Float)  # before the attempt
    themes: Mapped[list[Any]] = mapped_column(JSON)


class RatedFirst(Base):
    """Which solver already made their first attempt at which puzzle: of two at once, one is."""

    __tablename__ = "rated_firsts"

    player_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    problem_id: Mapped[str] = mapped_column(String(48), primary_key=True)


# A player's due cards in order; a solver's attempts by time.
Index("ix_training_cards_due", TrainingCard.player_id, TrainingCard.due)
Index("ix_puzzle_attempts_player", PuzzleAttempt.player_id, PuzzleAttempt.at)
# A player's games newest first (the games list, a sync's resume point): one index per colour.
Index("ix_games_white_played", Game.white_id, Game.played_at_ms)
Index("ix_games_black_played", Game.black_id, Game.played_at_ms)
# Puzzles in serving order (never served first, then least recently served); PostgreSQL's
# index says NULLS FIRST (see migration 0004).
Index("ix_problems_serving", Problem.served_count, Problem.last_served_at, Problem.id)
