"""The typed shape of every JSON body the API answers with: each route declares one of these as
its response model, so `/openapi.json` describes every 2xx body field by field.

Views keep any field a model does not list yet (`extra="allow"`): a view that grows a field
never loses it on the way out."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class View(BaseModel):
    model_config = ConfigDict(extra="allow")


# --- players, games, syncs -------------------------------------------------------------------


class Accepted(View):
    id: str
    status: str = Field(description="queued")
    url: str = Field(description="where to follow it")


class Followed(View):
    username: str
    followed: bool


class Rejection(View):
    index: int | None = Field(description="the game's place in the file or the export (1-based)")
    reason: str


class SyncView(View):
    id: str
    kind: Literal["lichess", "pgn"] | str
    username: str | None
    filename: str | None
    status: str = Field(description="queued, running, storing, done or failed")
    games_received: int
    games_stored: int
    games_new: int
    games_rejected: int
    rejected: list[Rejection]
    accounted: int
    error: str | None
    notice: str | None = Field(
        None, description="what a running sync waits for, e.g. Lichess's 429 pause and when it ends"
    )
    created_at: str | None
    finished_at: str | None


class Opening(View):
    eco: str | None
    name: str | None
    ply: int | None


class GameSummary(View):
    id: str
    source: str
    white: str | None
    black: str | None
    white_rating: int | None
    black_rating: int | None
    result: str
    status: str | None
    speed: str | None
    opening: Opening
    plies: int | None
    played_at: str | None


class Clock(View):
    initial: int | None
    increment: int | None


class GameDetail(GameSummary):
    variant: str
    rated: bool | None
    perf: str | None
    initial_fen: str | None
    moves_uci: list[str]
    moves_san: list[str]
    clock: Clock
    clocks_cs: list[int] | None
    server_analysis: list[dict[str, Any]] | None
    player_analysis: dict[str, Any] | None
    pgn_evals: list[dict[str, Any] | None] | None
    headers: dict[str, str] | None


class PlayerGames(View):
    username: str
    games: list[GameSummary]


# --- analysis --------------------------------------------------------------------------------


class AnalysisQueued(View):
    game_id: str
    status: str
    priority: str
    url: str


class AnalysisCancelled(View):
    game_id: str
    status: Literal["cancelled"]
    was: str = Field(description="queued or running")


class PlayerAnalysisQueued(View):
    username: str
    queued: int
    priority: str


class Nodes(View):
    quick: int | None
    deep: int | None


class MoveEvalView(View):
    ply: int
    cp: int | None = Field(description="centipawns after the ply, White's side")
    mate: int | None
    best: str | None = Field(description="the best move (UCI) in the position before the ply")
    line: str | None = Field(description="the best line from there, in SAN")


class StartScore(View):
    cp: int | None = Field(description="centipawns, White's side")
    mate: int | None


class AnalysisView(View):
    game_id: str
    status: str = Field(description="none, queued, running, done, failed or cancelled")
    phase: str | None
    progress: float = Field(description="of the current phase, 0 to 1")
    priority: str | None = None
    positions_done: int | None = None
    positions_total: int | None = None
    source: str | None = Field(None, description="engine, lichess or pgn")
    engine: str | None = None
    nodes: Nodes | None = Field(
        None,
        description="the budgets searched: a request for one game gets the interactive deep "
        "budget, batch work the lower one",
    )
    degraded: bool | None = Field(
        None,
        description="the deep pass ran at the batch budget because interactive requests were "
        "waiting for an engine",
    )
    start: StartScore | None = Field(
        None, description="the starting position's score, when the engine searched it"
    )
    error: str | None = None
    attempts: int | None = None
    requested_at: Any = None
    quick_done_at: Any = None
    finished_at: Any = None
    results: dict[str, dict[str, Any]] | None = Field(None, description="per plugin")
    results_phase: str | None = None
    evals: list[MoveEvalView] | None = None


class ExploreView(View):
    fen: str
    nodes: int = Field(description="the budget asked for")
    searched_nodes: int = Field(description="what the search (or the cached one) used")
    depth: int | None
    cached: bool = Field(description="from the evaluation cache")
    engine: str
    cp: int | None = Field(description="centipawns, White's side")
    mate: int | None = Field(description="moves to mate, White's side (negative: Black mates)")
    best: str | None = Field(description="the best move, UCI")
    line_uci: list[str]
    line_san: list[str] = Field(description="the best line, SAN, from this position")
    game_over: bool
    outcome: Literal["checkmate", "draw"] | None = Field(
        description="checkmate: the side that just moved won"
    )


class OpeningScore(View):
    opening: str
    games: int
    accuracy: float | None


class PerGame(View):
    inaccuracy: float | None
    mistake: float | None
    blunder: float | None


class PlayerReport(View):
    username: str
    games: int
    analysed: int
    accuracy: float | None
    acpl: float | None
    per_game: PerGame
    worst_openings: list[OpeningScore]


class ProgressEvent(View):
    """One Server-Sent Event's `data`: `progress` while running, then `done` or `failed`."""

    game_id: str
    status: str
    phase: str | None
    positions_done: int | None
    positions_total: int | None
    progress: float | None


# --- live ------------------------------------------------------------------------------------


class TrackingStarted(View):
    status: str = Field(description="tracking_started, already_tracking or requested")
    username: str
    via: str = Field(description="in-process, tracker or topic")


class TrackedPlayerView(View):
    username: str
    status: str
    game_id: str | None
    started_at: Any
    updated_at: Any
    ended_at: Any
    end_reason: str | None
    live_url: str | None


class Tracking(View):
    players: list[TrackedPlayerView]
    active_trackers: int | None


class CommentaryLine(View):
    ply: int
    san: str
    uci: str
    fen: str
    text: str
    commentator: str = Field(description="engine or llm")
    fallback: str | None = Field(description="why the LLM's line was not used, when it was not")
    judgment: str | None
    best_san: str | None
    cp: int | None
    mate: int | None
    white_clock: int | None = None
    black_clock: int | None = None
    audio_url: str | None
    white_percent: float | None = Field(
        description="White's winning chances after the move, 0-100 (Lichess's curve)"
    )


class LiveView(View):
    game_id: str
    username: str | None
    white: str | None
    black: str | None
    status: str
    result: str | None
    initial_fen: str | None
    plies: int
    commentary: list[CommentaryLine]


# --- problems --------------------------------------------------------------------------------


class MoveRef(View):
    uci: str
    san: str


class PuzzleGame(View):
    id: str
    ply: int
    white: str | None
    black: str | None
    url: str


class PuzzleView(View):
    id: str
    fen: str = Field(description="before the blunder")
    blunder: MoveRef
    puzzle_fen: str = Field(description="the position to solve")
    solution_length: int
    solver: str
    kind: str
    themes: list[str]
    rating: int = Field(description="the puzzle's difficulty (see rating_kind)")
    rating_kind: Literal["estimate", "glicko"] = Field(
        description="estimate: computed from the solution's length and themes, until a "
        "solver's first attempt; glicko: the Glicko-2 rating solvers' first attempts moved"
    )
    rated_plays: int = Field(0, description="first attempts that moved the rating")
    game: PuzzleGame
    served_count: int
    attempts: int
    successes: int
    last_served_at: str | None


class RatingChange(View):
    player: str
    rating: int = Field(description="the solver's puzzle rating after the attempt (Glicko-2)")
    rd: int = Field(description="its deviation")
    puzzle_rating: int
    rated: bool = Field(description="the solver's first attempt at this puzzle: it moved both")


class AttemptResult(View):
    id: str
    correct: bool
    complete: bool
    reply: MoveRef | None
    played: MoveRef | None = None
    wrong_at: int | None = None
    expected: MoveRef | None = None
    fen: str
    attempts: int
    successes: int
    solution: list[str] | None = None
    rating: RatingChange | None = Field(
        None, description="the solver's and the puzzle's ratings, when a player was named"
    )


class MatchChanged(View):
    match_id: str
    event: str = Field(description="what moved the match on (an event type), or connected")


class SolutionView(View):
    id: str
    solution: list[MoveRef] = Field(description="the solver's moves and the replies, in turn")
    attempts: int
    successes: int
    rating: RatingChange | None = None


class HintView(View):
    id: str
    step: int
    square: str = Field(description="where the piece to move stands")


class ThemeCount(View):
    total: int
    never_served: int


class PoolView(View):
    player: str | None
    total: int
    never_served: int
    by_theme: dict[str, ThemeCount]
    games_searched: int
    games_to_search: int


class GenerationAccepted(View):
    player: str | None
    games: int
    games_to_search: int
    games_queued_for_analysis: int
    status: str


# --- matches and robots ----------------------------------------------------------------------


class MatchCreated(View):
    id: str
    status: str
    rounds: int


class AnswerAccepted(View):
    match: str
    round: int
    status: str


class AnswerView(View):
    letter: str
    move: str
    san: str
    reason: str
    mine: bool
    who: str | None = None
    engine_points: int | None = None
    votes: int | None = None


class RoundView(View):
    number: int
    fen: str
    status: str
    deadline: float | None
    my_letter: str | None
    letters: list[str]
    answered: int
    voted: int
    i_answered: bool
    i_voted: bool
    answers: list[AnswerView]
    best: str | None
    robots: list[str]


class Standing(View):
    who: str = Field(description='"you", or a robot personality (its instances together)')
    members: list[str]
    score: int
    rounds: int = Field(description="rounds it answered in")
    per_round: float


class MatchView(View):
    id: str
    status: str
    rounds_total: int
    robots_per_round: int
    source: str
    round: int
    rounds: list[RoundView]
    standings: list[Standing]
    ranking: list[str]
    ranked_by: str


class PersonalityCount(View):
    idle: int
    busy: int
    identity: str


class RobotView(View):
    id: str
    personality: str
    state: str
    match: str | None
    round: int | None


class RobotPool(View):
    total: int
    released: int
    by_personality: dict[str, PersonalityCount]
    robots: list[RobotView]


# --- operations ------------------------------------------------------------------------------


class Session(View):
    signed_in: bool = Field(description="the token given is the server's (or none is needed)")
    token_required: bool = Field(description="whether writes need the API token")


class Health(View):
    status: Literal["ok", "degraded"]
    components: dict[str, str] = Field(description="store, bus, services, engine: ok or why not")


class GroupView(View):
    group: str
    topics: list[str]
    members: int = Field(description="the broker's count of the group's consumers")
    alive: int = Field(description="workers whose heartbeat is recent (what /ops shows)")
    lag: int
    committed: int


class DlqCount(View):
    topic: str
    parked: int


class Parked(View):
    offset: int
    key: str
    attempts: str
    error: str
    group: str
    source: str
    at_ms: int | None
    topic: str | None = None


class OpsView(View):
    groups: list[GroupView]
    dlq: list[DlqCount]
    failures: list[Parked]


class ParkedList(View):
    topic: str
    parked: list[Parked]


class Replayed(View):
    topic: str
    replayed: int


class Discarded(View):
    topic: str
    discarded: int


# --- training ----------------------------------------------------------------------------------


class CardGame(View):
    id: str
    ply: int = Field(description="the move asked for")
    url: str


class TrainingCardView(View):
    id: str
    kind: Literal["mistake", "puzzle"]
    fen: str = Field(description="the position to find a move in")
    turn: Literal["white", "black"]
    game: CardGame
    problem_id: str | None
    played: MoveRef | None = Field(description="the move played in the game (mistake cards)")
    judgment: str | None
    due: float = Field(description="when it was due (epoch seconds)")
    overdue_seconds: float
    reviews: int
    lapses: int


class DueCards(View):
    player: str
    now: float
    due: int = Field(description="cards due now")
    total: int = Field(description="the player's cards in all")
    cards: list[TrainingCardView] = Field(description="the first due ones, soonest first")


class CardAnswered(View):
    id: str
    correct: bool
    loss: float | None = Field(description="winning chances lost against the best move")
    answer: MoveRef
    best: MoveRef | None
    due: float = Field(description="when the card is due again (FSRS)")
    state: int | None = Field(description="FSRS state: 1 learning, 2 review, 3 relearning")
    stability: float | None
    difficulty: float | None


class ThemeResults(View):
    attempts: int
    first_wins: int
    failed: int
    win_rate: float
    puzzle_rating_avg: int
    performance: int | None = Field(
        description="average puzzle rating - 500 + 1000 x first-try win rate (as Lichess)"
    )


class Dashboard(View):
    player: str
    days: int
    rating: int = Field(description="puzzle rating (Glicko-2)")
    rd: int
    rated_attempts: int
    best_streak: int
    global_: ThemeResults = Field(alias="global")
    themes: dict[str, ThemeResults]
    weak_themes: list[str] = Field(
        description="at least 3 failures and a performance below the player's"
    )
    cards_due: int
    cards_total: int
    review_streak: int = Field(description="days in a row with a review")
    reviewed_today: bool


class StreakEnded(View):
    player: str
    score: int
    best: int


# --- insights ----------------------------------------------------------------------------------


class InsightGroup(View):
    moves: int = Field(description="the player's moves in the group")
    accuracy: float | None = Field(description="mean move accuracy (Lichess's per-move formula)")
    acpl: float | None = Field(description="average centipawn loss (capped at 1000, as Lichess)")
    blunders: int
    games: int = Field(description="games behind the numbers")
    game_ids: list[str] = Field(description="those games (the first 200): the drill-down")


class BlunderTheme(View):
    blunders: int
    games: int
    game_ids: list[str]


class Insights(View):
    player: str
    games: int
    overall: InsightGroup
    colour: dict[str, InsightGroup]
    result: dict[str, InsightGroup] = Field(description="win, draw, loss")
    phase: dict[str, InsightGroup] = Field(description="opening, middlegame, endgame (Lichess)")
    clock: dict[str, InsightGroup] = Field(description="by the time left before the move")
    opening: dict[str, InsightGroup] = Field(description="by opening family")
    month: dict[str, InsightGroup] = Field(description="the trend, month by month")
    blunder_themes: dict[str, BlunderTheme] = Field(
        description="what the blunders allowed or missed (puzzle themes' names)"
    )
