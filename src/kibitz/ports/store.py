"""The store's ports: one repository per aggregate. Each method is one unit of work (atomic: it
commits as a whole or not at all), so a service never holds a transaction across an await.
The SQL adapters (`kibitz.adapters.repo_*`) implement them on SQLite and PostgreSQL; the
in-memory twins (`tests/twins`) implement them for fast service tests; one contract suite
runs on all three."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from kibitz.domain.analysis import GameInput, PlyEval
from kibitz.domain.games import GameRecord
from kibitz.domain.judgment import Score
from kibitz.domain.training import CardSource, NewCard, Rating

# --- analyses ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnalysisJob:
    """A game as the analysis needs it, with its analysis's state."""

    game: GameInput  # without evaluations
    server_analysis: list[Any] | None  # Lichess's own analysis from its export
    pgn_evals: list[Any] | None  # [%eval] comments of an annotated PGN
    status: str  # none, queued, running, done, failed
    phase: str
    plugins: frozenset[tuple[str, int]]  # (plugin, version) results stored
    completion_pending: bool  # "done" was stored, its event not yet published


@dataclass(frozen=True)
class PhaseResult:
    """One pass's evaluations and the plugins' results on them, stored together."""

    phase: str
    evals: Sequence[PlyEval]
    cached: Sequence[bool] | None  # per position (start included): came from the cache
    nodes: int | None  # the budget searched; None for reused analysis
    source: str  # engine, lichess, pgn
    results: dict[str, tuple[int, dict[str, Any]]]  # plugin → (version, result)
    final: bool  # the last pass: the analysis is done
    completion_event_id: str | None  # with `final`: the id its completion event will carry
    start_score: Score | None = None  # the starting position's, White's side (engine passes)


Claim = Literal["taken", "done", "cancelled"] | str  # or the live holder's name


class Analyses(Protocol):
    async def request(
        self, game_id: str, priority: str, *, force: bool, now: float
    ) -> dict[str, Any]:
        """Queue (or requeue, or move ahead) the game's analysis; GameNotFound."""
        ...

    async def cancel(self, game_id: str) -> str:
        """Cancel a queued or running analysis (its lease is taken back: a worker running it
        stops at its next renewal); returns the status it had. GameNotFound; Conflict when
        there is nothing to cancel."""
        ...

    async def queue_player(self, player_id: str | None, priority: str) -> list[str] | None:
        """Queue every game of the player (None: every game) without an analysis; None when
        no game is theirs."""
        ...

    async def job(self, game_id: str) -> AnalysisJob | None: ...

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
        """Lease the job to `owner` and mark it running ("taken") at the budgets `nodes`
        (quick, deep; `degraded`: the lower deep budget of a waiting queue); "done" when
        another run finished it and "cancelled" when it was cancelled (unless `force`); else
        the name of the live holder of the lease."""
        ...

    async def release(
        self, game_id: str, owner: str, reason: str, max_attempts: int
    ) -> tuple[str, str] | None:
        """A failed run gives the job back: (status "queued" or "failed", source); None when
        `owner` no longer holds it."""
        ...

    async def renew(self, game_id: str, owner: str, until: float) -> bool:
        """Extend `owner`'s lease; False when it no longer holds it (the job was cancelled)."""
        ...

    async def progress(
        self, game_id: str, owner: str, phase: str, done: int, total: int
    ) -> None: ...

    async def store_phase(self, game_id: str, owner: str, result: PhaseResult, now: float) -> bool:
        """Replace the phase's evaluations and every plugin result; on `final` the job is done
        and its lease released. False (nothing written) when `owner` no longer holds the
        lease: the job was cancelled or taken over."""
        ...

    async def pending_completion(self, game_id: str) -> tuple[str, str] | None:
        """(event id, source) of a completion stored but not yet published."""
        ...

    async def completion_published(self, game_id: str, event_id: str) -> None: ...

    async def unpublished_completions(self, finished_before: float, limit: int) -> list[str]:
        """Games whose completion was stored (done) before `finished_before` and is still not
        published: left by a crash, or by a stop, after its request was settled."""
        ...

    async def stored(self, game_id: str) -> tuple[GameInput, str] | None:
        """The game with its stored evaluations (of the analysis's phase) and that phase."""
        ...

    async def add_results(
        self, game_id: str, phase: str, results: Sequence[tuple[str, int, dict[str, Any]]]
    ) -> None:
        """Store (plugin, version, result)s beside the others, replacing the same version's."""
        ...

    async def missing_results(self, plugins: Sequence[tuple[str, int]], limit: int) -> list[str]:
        """Analysed games missing a result of one of `plugins` (name, version)."""
        ...


# --- problems --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PuzzleSource:
    """An analysed game not yet searched for puzzles: its moves and per-ply scores."""

    game_id: str
    white_id: str | None
    black_id: str | None
    initial_fen: str | None
    moves_uci: Sequence[str]
    scores: Sequence[Score | None]  # after each ply, White's side
    start_score: Score | None = None  # of the starting position, White's side, when searched


@dataclass(frozen=True)
class StoredPuzzle:
    id: str  # game id - ply
    game_id: str
    ply: int
    fen: str  # before the blunder
    blunder_uci: str
    solution: list[str]
    kind: str
    themes: list[str]
    rating: int
    solver_color: str
    white_id: str | None
    black_id: str | None
    final_cp: int | None
    final_mate: int | None
    generator_version: int


@dataclass(frozen=True)
class ProblemScanResult:
    game_id: str
    version: int
    candidates: int
    searches: int
    rejected: Sequence[dict[str, Any]]  # (ply, reason) of each candidate that made none
    seconds: float


class Problems(Protocol):
    async def source(self, game_id: str, version: int) -> PuzzleSource | None:
        """The game when it is analysed, standard chess, and not searched by `version`."""
        ...

    async def save_scan(
        self, scan: ProblemScanResult, puzzles: Sequence[StoredPuzzle], now: float
    ) -> None:
        """The puzzles found (a puzzle already stored is kept) and the game's scan."""
        ...

    async def unsearched(self, player: str | None) -> list[str]:
        """Analysed games (of `player`, or all) not yet searched by the current generator."""
        ...

    async def games(self, player: str | None) -> tuple[int, int]:
        """(games, analysed games not yet searched) of `player` (or all)."""
        ...

    async def low_pool(self, player: str | None, threshold: int) -> bool:
        """Fewer than `threshold` never-served puzzles, and games wait to be searched."""
        ...

    async def serve(
        self,
        player: str | None,
        theme: str | None,
        now: float,
        count_up_to: int,
        rating_between: tuple[float, float] | None = None,
    ) -> tuple[dict[str, Any], int]:
        """The least recently served matching puzzle (rated within `rating_between` when
        given), marked served atomically (concurrent callers never get the same one), and how
        many are never served (counted up to `count_up_to`). NotFound when none matches."""
        ...

    async def solution(self, problem_id: str) -> tuple[str, str, list[str]] | None:
        """(FEN before the blunder, the blunder, the solution) of a puzzle."""
        ...

    async def attempted(self, problem_id: str, *, ended: bool, solved: bool) -> tuple[int, int]:
        """Count an attempt that `ended`; (attempts, successes) after it."""
        ...


# --- training ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    id: str
    player_id: str
    kind: str
    game_id: str
    ply: int
    fen: str
    problem_id: str | None
    played_uci: str | None
    best_uci: str | None
    judgment: str | None
    schedule: dict[str, Any]
    due: float
    reviews: int
    lapses: int


class Training(Protocol):
    async def card_source(self, game_id: str, player: str | None) -> CardSource | None:
        """The analysed game with its trainees: the players kibitz syncs, or only `player` when
        given (a player asking for their cards, synced or imported from PGN); None when it is
        not analysed or nobody trains on it."""
        ...

    async def unscanned(self, player: str, limit: int) -> list[str]:
        """The player's analysed games whose mistakes are not yet cards."""
        ...

    async def add_cards(
        self, game_id: str, players: Sequence[str], cards: Sequence[NewCard]
    ) -> int:
        """Store the cards (one already there is kept) and the game as scanned for `players`;
        returns how many are new."""
        ...

    async def due(self, player: str, now: float, limit: int) -> tuple[list[Card], int, int]:
        """The player's cards due at `now`, soonest first; and how many are due, and in all."""
        ...

    async def card(self, card_id: str) -> Card | None: ...

    async def known_answer(self, card_id: str, move_uci: str) -> tuple[bool, float | None] | None:
        """(correct, winning chances lost) of a move the engine already checked."""
        ...

    async def remember_answer(
        self, card_id: str, move_uci: str, correct: bool, loss: float | None
    ) -> None: ...

    async def review(
        self,
        card: Card,
        move_uci: str,
        correct: bool,
        schedule: dict[str, Any],
        due: float,
        at: float,
    ) -> bool:
        """Store the answer and the card's new schedule, unless the card was reviewed since it
        was read (`card.reviews` changed): False then, nothing written."""
        ...

    async def rate_attempt(
        self,
        player: str,
        problem_id: str,
        solved: bool,
        at: float,
        rate: Callable[[Rating, Rating, bool], tuple[Rating, Rating]],
    ) -> tuple[Rating, Rating, bool] | None:
        """Record a solver's ended attempt at a puzzle; the first one per solver and puzzle is
        rated with `rate` (atomically: of two at once, one is). Returns the solver's and the
        puzzle's ratings after it and whether it was rated; None for an unknown puzzle."""
        ...

    async def solver(self, player: str) -> tuple[Rating, int, int]:
        """The solver's rating (the starting one when never rated), rated attempts, best
        streak."""
        ...

    async def streak_ended(self, player: str, score: int) -> int:
        """Keep the best streak; returns it."""
        ...


# --- robots ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScalePolicy:
    min_idle: int  # idle instances kept per personality
    scale_up_busy: float  # one more when this share of a personality is busy
    max_live: int  # instances in all
    idle_release: float  # seconds idle beyond the minimum before an instance is released


@dataclass(frozen=True)
class PoolChange:
    """What changed in the pool: an instance "instantiated" or "released", or a personality
    "scaled" from `before` to `after` instances."""

    kind: Literal["instantiated", "released", "scaled"]
    personality: str
    robot_id: str | None = None
    reason: str = ""
    before: int = 0
    after: int = 0


@dataclass(frozen=True)
class RobotInstance:
    """One robot instance as the store holds it."""

    id: str
    personality: str
    state: str  # idle | busy | released
    match_id: str | None
    round: int | None
    state_since: float


class Robots(Protocol):
    async def assign(
        self, match_id: str, number: int, count: int, exclude: set[str], max_live: int, now: float
    ) -> tuple[list[dict[str, str]], list[PoolChange]]:
        """`count` robots for the round, the same ones when asked again; idle ones first, one
        personality after another, new instances while fewer than `max_live` live. Returns
        their identities and the instances created."""
        ...

    async def free_round(self, match_id: str, number: int, now: float) -> None: ...

    async def release_match(self, match_id: str, now: float) -> list[PoolChange]: ...

    async def scale(
        self, policy: ScalePolicy, now: float
    ) -> tuple[dict[str, int], list[PoolChange]]:
        """One scaling pass; live instances per personality after it, and the changes."""
        ...

    async def changed_since(self, since: float) -> list[RobotInstance]:
        """The instances whose state changed at or after `since` (clock seconds), by id."""
        ...

    async def states(self) -> dict[str, int]:
        """Live instances per state."""
        ...

    async def by_personality(self) -> dict[str, dict[str, int]]:
        """Idle and busy instances per personality."""
        ...


# --- matches ---------------------------------------------------------------------------------


class Matches(Protocol):
    async def state(self, match_id: str) -> dict[str, Any] | None:
        """The folded state the matches service stored (JSON of `domain.matches.Match`)."""
        ...

    async def running(self) -> list[dict[str, Any]]: ...

    async def save(
        self, match_id: str, person: str, status: str, state: dict[str, Any], now: float
    ) -> None: ...

    async def claim(self, match_id: str, number: int, participant: str, kind: str) -> bool:
        """Record that `participant` answered (`kind` "response") or voted ("vote") in the
        round; False when they already had: of two at once, exactly one gets True."""
        ...

    async def unclaim(self, match_id: str, number: int, participant: str, kind: str) -> None:
        """Take a claim back (its event could not be published)."""
        ...

    async def positions(self, source: str, player: str | None, count: int) -> list[dict[str, Any]]:
        """Up to `count` positions with one strong move: puzzle starts ("problems", least
        served first) or the player's analysed mistakes and blunders ("games")."""
        ...


# --- live ------------------------------------------------------------------------------------


@dataclass
class LiveGame:
    """A tracked game, as far as it was published."""

    game_id: str
    username: str
    last_ply: int  # plies already published
    white: str | None = None
    black: str | None = None
    initial_fen: str | None = None
    initial_clock: int | None = None


class Tracking(Protocol):
    async def claim(
        self,
        key: str,
        name: str,
        profile: dict[str, Any],
        owner: str,
        now: float,
        lease_seconds: float,
    ) -> bool:
        """Take the player's tracking lease (False while another live owner holds it)."""
        ...

    async def set_state(
        self,
        key: str,
        owner: str,
        now: float,
        *,
        status: str,
        game_id: str | None = None,
        end_reason: str | None = None,
    ) -> None:
        """waiting, live (with the game) or ended (with why; the lease is given back)."""
        ...

    async def renew(self, keys: Sequence[str], owner: str, until: float) -> None: ...

    async def profile(self, key: str) -> dict[str, Any] | None: ...

    async def open_game(self, game_id: str, username: str) -> LiveGame: ...

    async def game_started(
        self, game_id: str, white: str | None, black: str | None, initial_fen: str | None
    ) -> bool:
        """Record the players; True the first time (the game is announced once)."""
        ...

    async def ply_published(self, game_id: str, ply: int) -> None: ...

    async def game_ended(self, game_id: str, status: str, result: str, now: float) -> None: ...


class Commentaries(Protocol):
    async def exists(self, game_id: str, ply: int) -> bool: ...

    async def add(self, line: dict[str, Any]) -> bool:
        """Store a line unless the ply has one; True when this call stored it."""
        ...


# --- players, games, syncs -------------------------------------------------------------------


class Players(Protocol):
    async def follow(self, player_id: str, name: str, followed: bool) -> None: ...

    async def followed(self) -> list[str]: ...

    async def due_for_sync(self, due_before: float) -> list[tuple[str, int | None]]:
        """Followed players with no sync running and none since `due_before`, each with the
        time (ms) of their latest stored game."""
        ...


class Games(Protocol):
    async def store_games(
        self, items: Sequence[tuple[GameRecord, str | None, int | None]], now: float
    ) -> list[tuple[GameRecord, bool]]:
        """Upsert (game, its sync or import, its index there)s by game id, counting each
        index into its sync once however often it is delivered. Returns each game as stored
        (a PGN game whose URL id is another game's gets an id of its own) and whether it was
        new."""
        ...


class Syncs(Protocol):
    async def create_sync(
        self, sync_id: str, player_id: str, name: str, kind: str = "lichess"
    ) -> None:
        """A sync of the player's games from a site (`kind`: lichess, chesscom)."""
        ...

    async def create_import(
        self,
        sync_id: str,
        filename: str | None,
        received: int,
        rejected: list[dict[str, Any]],
        now: float,
    ) -> None: ...

    async def import_queued(self, sync_id: str, *, finished: bool, now: float) -> None: ...

    async def fail_interrupted(self, started_before: float, reason: str, now: float) -> int: ...

    async def start(self, sync_id: str, player_id: str) -> tuple[int, int | None]:
        """Mark the sync running; (lines received so far, latest stored game's ms to resume
        after, when it received some)."""
        ...

    async def report(
        self,
        sync_id: str,
        player_id: str,
        received: int,
        status: str,
        error: str | None,
        now: float,
        notice: str | None = None,
    ) -> None:
        """The sync's progress; `notice` says what a running sync waits for (None: nothing)."""
        ...

    async def fail(self, sync_id: str, reason: str) -> None: ...

    async def reject(self, sync_id: str, index: int | None, reason: str, now: float) -> None:
        """Count a game rejected with its reason, once per index."""
        ...


# --- workers ---------------------------------------------------------------------------------


class Workers(Protocol):
    """Each service process says it is alive; a dead one stops saying so (issue 17, item 21:
    a broker may keep a dead consumer in its group for minutes)."""

    async def beat(
        self, groups: Sequence[str], worker: str, now: float, stale_before: float
    ) -> None:
        """`worker` is alive in `groups` at `now`; the other workers of those groups not seen
        since `stale_before` are forgotten (while one is alive, the dead ones say nothing)."""
        ...

    async def leave(self, worker: str) -> None:
        """A clean stop: the worker is kept, as not alive (a group whose every worker left is
        a stopped service, not one that never ran)."""
        ...


# --- the store: every repository ---------------------------------------------------------


class Store(Protocol):
    """Every repository, and whether the store can be reached."""

    @property
    def players(self) -> Players: ...
    @property
    def games(self) -> Games: ...
    @property
    def syncs(self) -> Syncs: ...
    @property
    def analyses(self) -> Analyses: ...
    @property
    def problems(self) -> Problems: ...
    @property
    def matches(self) -> Matches: ...
    @property
    def robots(self) -> Robots: ...
    @property
    def tracking(self) -> Tracking: ...
    @property
    def commentaries(self) -> Commentaries: ...
    @property
    def training(self) -> Training: ...
