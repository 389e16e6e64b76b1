"""The problems service: puzzles searched in the background in analysed games, served least
recently served first.

A game is searched when its analysis completes, or on request (one game, one player's games,
or every analysed game: requests for many games fan out as one request per game, so the work
spreads over partitions and each game is retried alone). Candidates come from the stored
analysis; each is solved with the engine pool at the puzzle budget, lower in priority than any
analysis, behind a circuit breaker. The criteria are `kibitz.domain.puzzles`'s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import chess
from prometheus_client import Counter, Gauge, Histogram

from kibitz import topics
from kibitz.domain import puzzles
from kibitz.errors import InvalidInput, NotFound
from kibitz.events import (
    AnalysisCompleted,
    Envelope,
    ProblemsGenerated,
    ProblemsGenerationRequested,
)
from kibitz.ports.store import ProblemScanResult, PuzzleSource, StoredPuzzle
from kibitz.runtime.consumer import RetryPolicy
from kibitz.runtime.dispatch import by_type
from kibitz.runtime.service import Service
from kibitz.services import training
from kibitz.services.context import Context

log = logging.getLogger("kibitz.problems")

RETRY = RetryPolicy(max_attempts=5, base_delay=2.0, max_delay=60.0, handler_timeout=600.0)

GAMES_SEARCHED = Counter("kibitz_problems_games_searched_total", "Games searched for puzzles")
PROBLEMS_FOUND = Counter("kibitz_problems_generated_total", "Puzzles stored", ["kind"])
CANDIDATES_REJECTED = Counter(
    "kibitz_problems_rejected_total", "Candidate positions that made no puzzle"
)
SEARCH_SECONDS = Histogram(
    "kibitz_problems_game_seconds",
    "Time to search one game for puzzles",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 20, 40, 80, 160),
)
ACTIVE_SEARCHES = Gauge("kibitz_problems_active_searches", "Games being searched right now")


class ProblemsWorker:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        # A game can be asked for twice at once (its analysis completed while a player's
        # request fanned out): the second waits for the first, then finds it searched.
        self._searching: dict[str, asyncio.Lock] = {}

    async def on_analysed(self, envelope: Envelope, done: AnalysisCompleted) -> None:
        await self.generate_game(done.game_id, envelope)

    async def on_request(self, envelope: Envelope, asked: ProblemsGenerationRequested) -> None:
        if asked.game_id is not None:
            await self.generate_game(asked.game_id, envelope)
        else:
            await self.fan_out(asked.player, envelope)

    async def fan_out(self, player: str | None, cause: Envelope | None = None) -> int:
        """One generation request per analysed, not yet searched game (of `player`, or all)."""
        ids = await self.ctx.store.problems.unsearched(player)
        await self.ctx.publisher.publish_many(
            topics.PROBLEMS_REQUESTED,
            [(ProblemsGenerationRequested(game_id=g, reason="fan_out"), g) for g in ids],
            causes=[cause] * len(ids),
        )
        return len(ids)

    async def search(self, board: chess.Board, lines: int) -> list[puzzles.Line]:
        """The engine's best `lines` lines (behind every analysis, through the breaker)."""
        found = await self.ctx.evaluator.lines(
            board, self.ctx.settings.problem_nodes, lines, "problems", who="the puzzle search"
        )
        return [puzzles.Line(e.best_uci, e.score) for e in found if e.best_uci and e.score]

    async def generate_game(self, game_id: str, cause: Envelope | None = None) -> list[str]:
        """Search one analysed game for puzzles (once per generator version); the stored ids."""
        lock = self._searching.setdefault(game_id, asyncio.Lock())
        try:
            async with lock:
                return await self._generate_game(game_id, cause)
        finally:
            if not lock.locked() and self._searching.get(game_id) is lock:
                del self._searching[game_id]

    async def _generate_game(self, game_id: str, cause: Envelope | None) -> list[str]:
        source = await self.ctx.store.problems.source(game_id, puzzles.GENERATOR_VERSION)
        if source is None:
            return []  # unknown, not analysed, or searched already: nothing to do
        began = time.perf_counter()
        ACTIVE_SEARCHES.inc()
        try:
            found, rejected, searches, candidates = await self._solve_all(source)
        finally:
            ACTIVE_SEARCHES.dec()
        seconds = time.perf_counter() - began
        scan = ProblemScanResult(
            game_id=game_id,
            version=puzzles.GENERATOR_VERSION,
            candidates=candidates,
            searches=searches,
            rejected=rejected,
            seconds=seconds,
        )
        await self.ctx.store.problems.save_scan(scan, found, self.ctx.clock.now())
        GAMES_SEARCHED.inc()
        SEARCH_SECONDS.observe(seconds)
        CANDIDATES_REJECTED.inc(len(rejected))
        for puzzle in found:
            PROBLEMS_FOUND.labels(puzzle.kind).inc()
        log.info(
            "problems_searched game=%s candidates=%d found=%d searches=%d seconds=%.1f",
            game_id,
            candidates,
            len(found),
            searches,
            seconds,
        )
        ids = [p.id for p in found]
        await self.ctx.publisher.publish(
            topics.PROBLEMS_GENERATED,
            ProblemsGenerated(
                game_id=game_id, problem_ids=ids, candidates=candidates, rejected=len(rejected)
            ),
            game_id,
            cause=cause,
        )
        return ids

    async def _solve_all(
        self, game: PuzzleSource
    ) -> tuple[list[StoredPuzzle], list[dict[str, Any]], int, int]:
        initial = chess.Board(game.initial_fen) if game.initial_fen else chess.Board()
        moves = list(game.moves_uci)
        # A game from a position is judged from that position's own score; a game from the
        # start from the score Lichess assumes there.
        start = game.start_score if game.initial_fen else None
        candidates = puzzles.find_candidates(initial, moves, list(game.scores), start)
        rows: list[StoredPuzzle] = []
        rejected: list[dict[str, Any]] = []
        searches = 0
        covered_until = 0  # a puzzle's line covers the plies it spans: no second from them
        for candidate in candidates:
            if candidate.ply <= covered_until:
                continue
            board = initial.copy()
            for uci in moves[: candidate.ply]:
                board.push_uci(uci)
            verdict = await puzzles.solve(board, candidate.kind, self.search)
            searches += verdict.searches
            if not verdict.ok:
                rejected.append({"ply": candidate.ply, "reason": verdict.rejected})
                continue
            covered_until = candidate.ply + len(verdict.moves)
            before = board.copy()
            before.pop()
            rows.append(_problem_row(game, candidate, before, moves, verdict))
        return rows, rejected, searches, len(candidates)


def _problem_row(
    game: PuzzleSource,
    candidate: puzzles.Candidate,
    before: chess.Board,
    moves: list[str],
    verdict: puzzles.Verdict,
) -> StoredPuzzle:
    after = before.copy(stack=False)
    after.push_uci(moves[candidate.ply - 1])
    found = puzzles.themes(after, verdict.moves, candidate.kind)
    final = verdict.final_score
    return StoredPuzzle(
        id=f"{game.game_id}-{candidate.ply}",
        game_id=game.game_id,
        ply=candidate.ply,
        fen=before.fen(),
        blunder_uci=moves[candidate.ply - 1],
        solution=list(verdict.moves),
        kind=candidate.kind,
        themes=list(found),
        rating=puzzles.difficulty(after, verdict.moves, found),
        solver_color="white" if after.turn == chess.WHITE else "black",
        white_id=game.white_id,
        black_id=game.black_id,
        final_cp=final.cp if final else None,
        final_mate=final.mate if final else None,
        generator_version=puzzles.GENERATOR_VERSION,
    )


# --- requests (API, CLI, scheduler) ----------------------------------------------------------


async def request_generation(
    ctx: Context, player: str | None = None, *, reason: str = "requested"
) -> dict[str, Any]:
    """Ask for puzzles from a player's games (or every game): searches the analysed ones and
    queues analysis for the others (their search follows their analysis). NotFound when the
    player has no games here."""
    from kibitz.services.analysis import request_player_analysis

    name = player.strip().lower() if player else None

    total, unsearched = await ctx.store.problems.games(name)
    if name and total == 0:
        raise NotFound(f"no games of {player!r} here; sync or import them first")
    # Unanalysed games are analysed first (batch lane); their search follows their analysis.
    queued_analysis = await request_player_analysis(ctx, name)
    await ctx.publisher.publish(
        topics.PROBLEMS_REQUESTED,
        ProblemsGenerationRequested(player=name, reason=reason),
        name or "all",
    )
    return {
        "player": name,
        "games": total,
        "games_to_search": unsearched,
        "games_queued_for_analysis": queued_analysis,
        "status": "accepted",
    }


REFILL_EVERY_SECONDS = 60.0  # at most one automatic request per player this often


NEAR_WINDOWS = (100.0, 200.0, 400.0, 800.0)  # widened until a puzzle is found
ABOVE_WINDOWS = (100.0, 200.0, 400.0, 800.0, 5000.0)


async def serve_near(
    ctx: Context,
    player: str | None,
    theme: str | None,
    solver: str | None = None,
    above: float | None = None,
) -> dict[str, Any]:
    """A puzzle near the solver's rating (`solver`: the least recently served within the
    narrowest window around it that has one, else any), or the next one just above `above`
    (a streak's next, rising; NotFound when none is above)."""
    if above is not None:
        for width in ABOVE_WINDOWS:
            try:
                return await serve(ctx, player, theme, (above + 1, above + width))
            except NotFound:
                continue
        raise NotFound(f"no puzzle rated above {round(above)}")
    if solver is None:
        return await serve(ctx, player, theme)
    rating, _, _ = await ctx.store.training.solver(training.player_id(solver))
    for width in NEAR_WINDOWS:
        try:
            return await serve(ctx, player, theme, (rating.rating - width, rating.rating + width))
        except NotFound:
            continue
    return await serve(ctx, player, theme)


async def serve(
    ctx: Context,
    player: str | None = None,
    theme: str | None = None,
    rating_between: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Serve the next puzzle (the store's least recently served) and, when fewer than
    `problems_min_unserved` never-served puzzles remain for the player, ask for more in the
    background: serving never waits on the event log (a stalled broker held the answer for
    30 s and then failed it, with the puzzle already marked served: issue 17, item 8)."""
    check_theme(theme)
    name = player.strip().lower() if player else None
    view, remaining = await ctx.store.problems.serve(
        name, theme, ctx.clock.now(), ctx.settings.problems_min_unserved, rating_between
    )
    if remaining < ctx.settings.problems_min_unserved:
        task = asyncio.create_task(_refill_in_background(ctx, player, remaining))
        _refills.add(task)
        task.add_done_callback(_refills.discard)
    return {k: v for k, v in view.items() if not k.startswith("_")}  # not the solution


REFILL_TIMEOUT = 30.0  # a pool-low request that cannot be sent by then is dropped (logged)
_refills: set[asyncio.Task[None]] = set()  # the background sends, kept until done


async def _refill_in_background(ctx: Context, player: str | None, remaining: int) -> None:
    try:
        await asyncio.wait_for(refill_if_low(ctx, player, remaining), REFILL_TIMEOUT)
    except Exception as exc:  # the scheduler asks again within a minute
        log.warning("problems_refill_not_sent player=%s: %s", player or "all", exc)


async def refill_if_low(ctx: Context, player: str | None, remaining: int) -> bool:
    """Ask for generation when the never-served count is below the threshold (debounced)."""
    if remaining >= ctx.settings.problems_min_unserved:
        return False
    key = (player or "").strip().lower() or "all"
    now = ctx.clock.now()
    if now - ctx.debounced.get(f"refill:{key}", float("-inf")) < REFILL_EVERY_SECONDS:
        return False
    ctx.debounced[f"refill:{key}"] = now
    await ctx.publisher.publish(
        topics.PROBLEMS_REQUESTED,
        ProblemsGenerationRequested(player=None if key == "all" else key, reason="pool_low"),
        key,
    )
    log.info("problems_pool_low key=%s never_served=%d", key, remaining)
    return True


# --- serving ---------------------------------------------------------------------------------


def check_theme(theme: str | None) -> str | None:
    if theme is not None and theme not in puzzles.THEMES:
        raise InvalidInput(f"unknown theme {theme!r}; themes are: {', '.join(puzzles.THEMES)}")
    return theme


async def record_attempt(
    ctx: Context, problem_id: str, moves_uci: list[str], solver: str | None = None
) -> dict[str, Any]:
    """Check the solver's moves (theirs only; the replies are the puzzle's) against the
    solution. An attempt that ends, solved or wrong, counts once; a correct beginning counts
    nothing yet and returns the reply to play. Returns `correct`, `complete`, `reply`, and on
    a wrong move its index and the expected move. InvalidInput for a malformed or illegal move
    or too many moves, NotFound for an unknown puzzle; nothing is written then. With a
    `solver`, an attempt that ends is theirs: the first per puzzle moves their rating and the
    puzzle's (Glicko-2)."""
    if solver is not None:
        training.player_id(solver)  # a bad name is refused before anything is written
    stored = await ctx.store.problems.solution(problem_id)
    if stored is None:
        raise NotFound(f"no puzzle {problem_id!r}")
    if not moves_uci:
        raise InvalidInput("moves: give at least one move (UCI, e.g. e2e4)")
    fen, blunder_uci, solution_uci = stored
    board = chess.Board(fen)
    board.push_uci(blunder_uci)
    solution = [chess.Move.from_uci(u) for u in solution_uci]
    solver_moves = (len(solution) + 1) // 2
    if len(moves_uci) > solver_moves:
        raise InvalidInput(f"moves: the solution has {solver_moves} moves, not {len(moves_uci)}")
    result: dict[str, Any] = {"id": problem_id, "correct": True, "complete": False, "reply": None}
    for step, uci in enumerate(moves_uci):
        try:
            move = chess.Move.from_uci(uci)
        except (ValueError, TypeError):
            raise InvalidInput(f"moves[{step}]: {uci!r} is not a UCI move (e.g. e2e4)") from None
        if move not in board.legal_moves:
            raise InvalidInput(f"moves[{step}]: {uci} is not legal in {board.fen()}")
        expected = solution[2 * step]
        last = 2 * step == len(solution) - 1
        result["played"] = {"uci": move.uci(), "san": board.san(move)}
        if not puzzles.is_solution_move(board, move, expected, last):
            result.update(
                correct=False,
                wrong_at=step,
                expected={"uci": expected.uci(), "san": board.san(expected)},
            )
            break
        board.push(move)
        result["reply"] = None
        if 2 * step + 1 < len(solution):
            reply = solution[2 * step + 1]
            result["reply"] = {"uci": reply.uci(), "san": board.san(reply)}
            board.push(reply)
    result["complete"] = bool(result["correct"]) and len(moves_uci) == solver_moves
    result["fen"] = board.fen()  # after the last right move and its reply
    ended = bool(result["complete"] or not result["correct"])
    result["attempts"], result["successes"] = await ctx.store.problems.attempted(
        problem_id, ended=ended, solved=bool(result["complete"])
    )
    if ended and solver is not None:
        result["rating"] = await training.rate_attempt(
            ctx, solver, problem_id, bool(result["complete"])
        )
    if result["complete"]:
        result["solution"] = solution_uci
    return result


async def _solution_line(ctx: Context, problem_id: str) -> list[dict[str, str]]:
    """The whole solution from the puzzle's position, the solver's moves and the replies."""
    stored = await ctx.store.problems.solution(problem_id)
    if stored is None:
        raise NotFound(f"no puzzle {problem_id!r}")
    fen, blunder_uci, solution_uci = stored
    board = chess.Board(fen)
    board.push_uci(blunder_uci)
    line = []
    for uci in solution_uci:
        move = chess.Move.from_uci(uci)
        line.append({"uci": uci, "san": board.san(move)})
        board.push(move)
    return line


async def reveal_solution(
    ctx: Context, problem_id: str, *, counted: bool, solver: str | None = None
) -> dict[str, Any]:
    """The solution, shown to a solver who gives up: that ends their attempt unsolved (as on
    Lichess), unless a wrong move already ended it (`counted`)."""
    if solver is not None:
        training.player_id(solver)
    line = await _solution_line(ctx, problem_id)
    attempts, successes = await ctx.store.problems.attempted(
        problem_id, ended=not counted, solved=False
    )
    view: dict[str, Any] = {
        "id": problem_id,
        "solution": line,
        "attempts": attempts,
        "successes": successes,
    }
    if not counted and solver is not None:
        view["rating"] = await training.rate_attempt(ctx, solver, problem_id, False)
    return view


async def hint(ctx: Context, problem_id: str, step: int) -> dict[str, Any]:
    """The square of the piece the solver moves at their move `step` (0: the first)."""
    line = await _solution_line(ctx, problem_id)
    solver = line[0::2]
    if not 0 <= step < len(solver):
        raise InvalidInput(f"step: the solver has {len(solver)} moves here, not {step + 1}")
    return {"id": problem_id, "step": step, "square": solver[step]["uci"][:2]}


def build(ctx: Context) -> Service:
    worker = ProblemsWorker(ctx)
    handle = by_type(
        "the problems service",
        {AnalysisCompleted: worker.on_analysed, ProblemsGenerationRequested: worker.on_request},
    )
    return Service(
        name="problems",
        handlers={topics.ANALYSIS_COMPLETED: handle, topics.PROBLEMS_REQUESTED: handle},
        retry=RETRY,
        record_event_ids=False,  # idempotent: one scan per game and version, ids by game+ply
        description="puzzles from analysed games, validated for a unique solution",
        component=worker,
    )
