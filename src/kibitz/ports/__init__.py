"""The ports: the small interfaces domain and services use, each with real adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import chess

from kibitz.domain.commentary import Comment, MoveFacts
from kibitz.domain.engine import EngineEval


class TopicPartition(NamedTuple):
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class Record:
    """One message read from the event log."""

    topic: str
    partition: int
    offset: int
    key: str
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int = 0

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic's declaration: partition count and retention."""

    name: str
    partitions: int = 4
    retention_ms: int | None = 7 * 24 * 3600 * 1000
    config: dict[str, str] = field(default_factory=dict)


RevokeListener = Callable[[set[TopicPartition]], Awaitable[None]]


class Consumer(Protocol):
    """A member of a consumer group reading some partitions of some topics."""

    async def start(self) -> None: ...

    async def poll(self, max_records: int = 500, timeout: float = 0.5) -> list[Record]:
        """Records of the assigned partitions after the consumer's position; [] on timeout."""
        ...

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Record `offsets` (the next offset to read, per partition) as the group's progress."""
        ...

    def assignment(self) -> set[TopicPartition]: ...

    def pause(self, partitions: set[TopicPartition]) -> None: ...

    def resume(self, partitions: set[TopicPartition]) -> None: ...

    async def seek_to_beginning(self, partitions: set[TopicPartition] | None = None) -> None: ...

    async def close(self) -> None:
        """Leave the group; uncommitted work is read again by whoever takes the partitions."""
        ...


class EventLog(Protocol):
    """A partitioned, durable, replayable log with consumer groups (Kafka's model)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def declare(self, topics: Sequence[TopicSpec]) -> None: ...

    async def append(
        self, topic: str, key: str, value: bytes, headers: Sequence[tuple[str, bytes]] = ()
    ) -> tuple[int, int]:
        """Append one message; same key → same partition. Returns (partition, offset)."""
        ...

    async def append_many(
        self, topic: str, items: Sequence[tuple[str, bytes, Sequence[tuple[str, bytes]]]]
    ) -> list[tuple[int, int]]:
        """Append (key, value, headers) items in order, pipelined; returns (partition, offset)s."""
        ...

    def consumer(
        self,
        group: str,
        topics: Sequence[str],
        *,
        on_revoke: RevokeListener | None = None,
    ) -> Consumer: ...

    async def end_offsets(self, topic: str) -> dict[int, int]:
        """The next offset to be written, per partition."""
        ...

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        """The group's committed offset per partition (0 where it never committed)."""
        ...

    async def lag(self, group: str, topic: str) -> dict[int, int]:
        """Messages appended but not yet committed by `group`, per partition."""
        ...

    async def members(self, group: str) -> int:
        """How many consumers are members of `group` now (workers alive)."""
        ...

    async def reset_group(self, group: str, topic: str) -> None:
        """Replay: move `group`'s committed offsets of `topic` back to the beginning."""
        ...

    async def read(self, topic: str, partition: int, offset: int, limit: int = 100) -> list[Record]:
        """Records of one partition from `offset`, without a group (tail, DLQ listing, replay)."""
        ...

    async def ping(self) -> None:
        """Raises when the log cannot be reached."""
        ...


class ProcessedEvents(Protocol):
    """Idempotency per consumer group: which event ids a group has already handled."""

    async def seen(self, group: str, event_id: str) -> bool: ...

    async def mark(self, group: str, event_id: str) -> None: ...

    async def seen_many(self, group: str, event_ids: list[str]) -> set[str]:
        """The ids among `event_ids` that `group` has already handled."""
        ...

    async def mark_many(self, group: str, event_ids: list[str]) -> None: ...


# --- the engine ------------------------------------------------------------------------------

Priority = int | Callable[[], int]  # lower first; a function is read when an engine frees up


class Engine(Protocol):
    """Searches positions at a node budget, handing engines out by priority (the adapter is a
    pool of Stockfish processes). Services reach it only through `services.evaluator`."""

    name: str

    async def analyse(self, board: chess.Board, nodes: int, priority: Priority = 0) -> EngineEval:
        """The best line of `board` (its move history is sent too) after `nodes` nodes."""
        ...

    async def analyse_lines(
        self, board: chess.Board, nodes: int, lines: int, priority: Priority = 0
    ) -> list[EngineEval]:
        """The `lines` best lines (MultiPV), best first; [] when the game is over."""
        ...


class EvalCache(Protocol):
    """Evaluations of positions already searched, keyed by EPD and node budget."""

    async def lookup(self, epds: Sequence[str], nodes: int) -> dict[str, EngineEval]:
        """The cached evaluation of each of `epds` searched with at least `nodes` nodes (the
        smallest such budget)."""
        ...

    async def keep(self, found: Sequence[tuple[str, EngineEval]]) -> None:
        """Remember fresh results; the first result kept per (EPD, budget) stays."""
        ...


# --- commentary ------------------------------------------------------------------------------


class Commentator(Protocol):
    """Turns the facts of one move into a line of commentary (templates, an LLM …)."""

    name: str

    async def comment(self, facts: MoveFacts) -> Comment: ...


class Speech(Protocol):
    """Speaks a line: WAV bytes; UpstreamUnavailable when it cannot."""

    async def speak(self, text: str) -> bytes: ...


# --- game sources ----------------------------------------------------------------------------


class GameSource(Protocol):
    """A server players' games come from (Lichess today; room for a second one). Every call
    raises LichessUserNotFound for an unknown player or game, LichessRateLimited when the
    server asks to slow down, UpstreamUnavailable when it cannot be reached."""

    def stream_games(
        self,
        username: str,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        max_games: int | None = None,
    ) -> AsyncIterator[tuple[str, dict[str, Any] | None]]:
        """A player's games oldest first, each as it arrives: (the line as received, the
        parsed game or None when the line is not a game object)."""
        ...

    async def playing_game(self, username: str) -> str | None:
        """The id of the game the player is playing now, if any."""
        ...

    def stream_game(self, game_id: str) -> AsyncIterator[dict[str, Any]]:
        """A game's state, then each move as it is played, until it ends."""
        ...

    async def close(self) -> None: ...
