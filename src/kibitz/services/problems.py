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
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import chess
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from kibitz import topics
from kibitz.adapters.store_models import (
    Analysis,
    Game,
    MoveEval,
    Problem,
    ProblemScan,
    ProblemTheme,
)
from kibitz.domain import puzzles
from kibitz.domain.judgment import Score, stored_score
from kibitz.errors import InvalidInput, MalformedEvent, NotFound, UpstreamUnavailable
from kibitz.events import (
    AnalysisCompleted,
    Envelope,
    Payload,
    ProblemsGenerated,
    ProblemsGenerationRequested,
)
from kibitz.runtime.consumer import RetryPolicy
from kibitz.runtime.service import Service
from kibitz.services.context import Context

log = logging.getLogger("kibitz.problems")
Q = TypeVar("Q")

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
POOL_SIZE = Gauge("kibitz_problems_pool", "Puzzles in the pool", ["state"])
ACTIVE_SEARCHES = Gauge("kibitz_problems_active_searches", "Games being searched right now")


class ProblemsWorker:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        # A game can be asked for twice at once (its analysis completed while a player's
        # request fanned out): the second waits for the first, then finds it searched.
        self._searching: dict[str, asyncio.Lock] = {}

    async def handle(self, envelope: Envelope, payload: Payload) -> None:
        if isinstance(payload, AnalysisCompleted):
            await self.generate_game(payload.game_id, envelope)
        elif isinstance(payload, ProblemsGenerationRequested):
            if payload.game_id is not None:
                await self.generate_game(payload.game_id, envelope)
            else:
                await self.fan_out(payload.player, envelope)
        else:
            raise MalformedEvent(f"the problems service does not handle {envelope.type}")

    async def fan_out(self, player: str | None, cause: Envelope | None = None) -> int:
        """One generation request per analysed, not yet searched game (of `player`, or all)."""
        ids = await self.ctx.store.read(lambda s: unsearched_games(s, player))
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
        loaded = await self.ctx.store.read(lambda s: _load(s, game_id))
        if loaded is None:
            return []  # unknown, not analysed, or searched already: nothing to do
        game, initial, moves, scores = loaded
        began = time.perf_counter()
        ACTIVE_SEARCHES.inc()
        try:
            rows, rejected, searches, candidates = await self._solve_all(
                game, initial, moves, scores
            )
        finally:
            ACTIVE_SEARCHES.dec()
        seconds = time.perf_counter() - began
        await self.ctx.store.run(
            lambda s: _store(s, self.ctx, game_id, rows, rejected, searches, candidates, seconds)
        )
        GAMES_SEARCHED.inc()
        SEARCH_SECONDS.observe(seconds)
        CANDIDATES_REJECTED.inc(len(rejected))
        for row in rows:
            PROBLEMS_FOUND.labels(row["kind"]).inc()
        log.info(
            "problems_searched game=%s candidates=%d found=%d searches=%d seconds=%.1f",
            game_id,
            candidates,
            len(rows),
            searches,
            seconds,
        )
        ids = [r["id"] for r in rows]
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
        self,
        game: dict[str, Any],
        initial: chess.Board,
        moves: list[str],
        scores: list[Score | None],
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, int]:
        candidates = puzzles.find_candidates(initial, moves, scores)
        rows: list[dict[str, Any]] = []
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
    game: dict[str, Any],
    candidate: puzzles.Candidate,
    before: chess.Board,
    moves: list[str],
    verdict: puzzles.Verdict,
) -> dict[str, Any]:
    after = before.copy(stack=False)
    after.push_uci(moves[candidate.ply - 1])
    found = puzzles.themes(after, verdict.moves, candidate.kind)
    final = verdict.final_score
    return {
        "id": f"{game['id']}-{candidate.ply}",
        "game_id": game["id"],
        "ply": candidate.ply,
        "fen": before.fen(),
        "blunder_uci": moves[candidate.ply - 1],
        "solution": list(verdict.moves),
        "kind": candidate.kind,
        "themes": found,
        "rating": puzzles.difficulty(after, verdict.moves, found),
        "solver_color": "white" if after.turn == chess.WHITE else "black",
        "white_id": game["white_id"],
        "black_id": game["black_id"],
        "final_cp": final.cp if final else None,
        "final_mate": final.mate if final else None,
        "generator_version": puzzles.GENERATOR_VERSION,
    }


def _load(
    session: Session, game_id: str
) -> tuple[dict[str, Any], chess.Board, list[str], list[Score | None]] | None:
    """The game, its start, moves and per-ply scores, when it is analysed and not yet searched
    by this generator version."""
    scan = session.get(ProblemScan, game_id)
    if scan is not None and scan.version >= puzzles.GENERATOR_VERSION:
        return None
    game = session.get(Game, game_id)
    analysis = session.get(Analysis, game_id)
    if game is None or analysis is None or analysis.status != "done":
        return None
    if game.variant not in ("standard", "fromPosition"):
        return None  # puzzles follow standard chess rules
    phases = {
        phase: session.execute(
            select(MoveEval.ply, MoveEval.cp, MoveEval.mate)
            .where(MoveEval.game_id == game_id, MoveEval.phase == phase)
            .order_by(MoveEval.ply)
        ).all()
        for phase in ("deep", "quick")
    }
    rows = phases["deep"] or phases["quick"]
    moves = game.moves_uci.split() if game.moves_uci else []
    if not rows or not moves:
        return None
    by_ply = {r.ply: stored_score(r.cp, r.mate) for r in rows}
    scores = [by_ply.get(ply) for ply in range(1, len(moves) + 1)]
    initial = chess.Board(game.initial_fen) if game.initial_fen else chess.Board()
    info = {"id": game.id, "white_id": game.white_id, "black_id": game.black_id}
    return info, initial, moves, scores


def _store(
    session: Session,
    ctx: Context,
    game_id: str,
    rows: list[dict[str, Any]],
    rejected: list[dict[str, Any]],
    searches: int,
    candidates: int,
    seconds: float,
) -> None:
    store = ctx.store
    if rows:
        session.execute(store.insert(Problem).on_conflict_do_nothing(), rows)
        session.execute(
            store.insert(ProblemTheme).on_conflict_do_nothing(),
            [{"problem_id": r["id"], "theme": t} for r in rows for t in r["themes"]],
        )
    session.merge(
        ProblemScan(
            game_id=game_id,
            version=puzzles.GENERATOR_VERSION,
            candidates=candidates,
            problems=len(rows),
            searches=searches,
            rejected=rejected,
            seconds=round(seconds, 3),
            scanned_at=datetime.now(UTC),
        )
    )


def unsearched_games(session: Session, player: str | None) -> list[str]:
    """Analysed games (of `player`, or all) not yet searched by this generator version."""
    searched = select(ProblemScan.game_id).where(ProblemScan.version >= puzzles.GENERATOR_VERSION)
    query = (
        select(Game.id)
        .join(Analysis, Analysis.game_id == Game.id)
        .where(Analysis.status == "done", Game.id.not_in(searched))
    )
    if player is not None:
        name = player.strip().lower()
        query = query.where(or_(Game.white_id == name, Game.black_id == name))
    return list(session.scalars(query.order_by(Game.id)))


def search_progress(session: Session, player: str | None) -> tuple[int, int]:
    """(games searched, games still waiting to be analysed or searched) among `player`'s
    games (or all): what a caller waiting for a generation request watches."""
    games = select(Game.id, Game.variant)
    if player is not None:
        name = player.strip().lower()
        games = games.where(or_(Game.white_id == name, Game.black_id == name))
    status = dict(session.execute(select(Analysis.game_id, Analysis.status)).all())
    scanned = set(
        session.scalars(
            select(ProblemScan.game_id).where(ProblemScan.version >= puzzles.GENERATOR_VERSION)
        )
    )
    searched = waiting = 0
    for game_id, variant in session.execute(games):
        if game_id in scanned:
            searched += 1
        elif variant in ("standard", "fromPosition") and status.get(game_id) != "failed":
            waiting += 1
    return searched, waiting


# --- requests (API, CLI, scheduler) ----------------------------------------------------------


async def request_generation(
    ctx: Context, player: str | None = None, *, reason: str = "requested"
) -> dict[str, Any]:
    """Ask for puzzles from a player's games (or every game): searches the analysed ones and
    queues analysis for the others (their search follows their analysis). NotFound when the
    player has no games here."""
    from kibitz.services.analysis import request_player_analysis

    name = player.strip().lower() if player else None

    def count(session: Session) -> tuple[int, int]:
        games = select(func.count(Game.id))
        if name:
            games = games.where(or_(Game.white_id == name, Game.black_id == name))
        return session.scalar(games) or 0, len(unsearched_games(session, name))

    total, unsearched = await ctx.store.read(count)
    if name and total == 0:
        raise NotFound(f"no games of {player!r} here; sync or import them first")
    queued_analysis = await request_player_analysis(ctx, name) if name else 0
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
_last_refill: dict[str, float] = {}


async def serve(
    ctx: Context, player: str | None = None, theme: str | None = None
) -> dict[str, Any]:
    """Serve the next puzzle (see `serve_next`) and, when fewer than `problems_min_unserved`
    never-served puzzles remain for the player, ask for more in the background."""
    now = datetime.fromtimestamp(ctx.clock.now(), UTC)

    def write(session: Session) -> tuple[dict[str, Any], int]:
        view = serve_next(session, player, theme, now)
        threshold = ctx.settings.problems_min_unserved
        return view, never_served(session, player, at_most=threshold)

    view, remaining = await ctx.store.run(write)
    await refill_if_low(ctx, player, remaining)
    return public(view)


async def refill_if_low(ctx: Context, player: str | None, remaining: int) -> bool:
    """Ask for generation when the never-served count is below the threshold (debounced)."""
    if remaining >= ctx.settings.problems_min_unserved:
        return False
    key = (player or "").strip().lower() or "all"
    now = ctx.clock.now()
    if now - _last_refill.get(key, float("-inf")) < REFILL_EVERY_SECONDS:
        return False
    _last_refill[key] = now
    await ctx.publisher.publish(
        topics.PROBLEMS_REQUESTED,
        ProblemsGenerationRequested(player=None if key == "all" else key, reason="pool_low"),
        key,
    )
    log.info("problems_pool_low key=%s never_served=%d", key, remaining)
    return True


# --- serving ---------------------------------------------------------------------------------


def _filtered(query: Q, player: str | None, theme: str | None) -> Q:
    """`query` narrowed to the puzzles of `player`'s games and of `theme`."""
    filtered: Any = query
    if player:
        name = player.strip().lower()
        filtered = filtered.where(or_(Problem.white_id == name, Problem.black_id == name))
    if theme:
        filtered = filtered.where(
            Problem.id.in_(select(ProblemTheme.problem_id).where(ProblemTheme.theme == theme))
        )
    return cast(Q, filtered)


def check_theme(theme: str | None) -> str | None:
    if theme is not None and theme not in puzzles.THEMES:
        raise InvalidInput(f"unknown theme {theme!r}; themes are: {', '.join(puzzles.THEMES)}")
    return theme


SERVE_CANDIDATES = 16  # puzzles looked at per round when concurrent clients take some


def serve_next(
    session: Session, player: str | None, theme: str | None, now: datetime
) -> dict[str, Any]:
    """The least recently served matching puzzle (never served first), marked served in the
    same transaction, so concurrent clients never get the same one.

    PostgreSQL: `FOR UPDATE SKIP LOCKED` alone is not enough. A row locked and served by
    another transaction is still returned to one that read it before that commit (its WHERE
    is checked again on the new row version, its ORDER BY is not). So the first candidates
    are read, then each is locked only if its `served_count` is still the one read: a puzzle
    served meanwhile fails that check and the next candidate is tried. SQLite has one writer
    at a time."""
    check_theme(theme)
    order = (Problem.last_served_at.asc().nulls_first(), Problem.id)
    for _ in range(100):
        seen = session.execute(
            _filtered(select(Problem.id, Problem.served_count), player, theme)
            .order_by(*order)
            .limit(SERVE_CANDIDATES)
        ).all()
        if not seen:
            what = " ".join(x for x in (f"of {player!r}" if player else "", theme or "") if x)
            raise NotFound(f"no puzzle {what} yet".replace("  ", " "))
        for problem_id, served_count in seen:
            problem = session.scalars(
                select(Problem)
                .where(Problem.id == problem_id, Problem.served_count == served_count)
                .with_for_update(skip_locked=True)
                .execution_options(populate_existing=True)
            ).first()
            if problem is not None:
                problem.last_served_at = now
                problem.served_count += 1
                return problem_view(session, problem)
    raise UpstreamUnavailable("the puzzle pool is too busy right now; try again")


def never_served(session: Session, player: str | None, at_most: int | None = None) -> int:
    """How many puzzles (of `player`'s games) were never served; counting stops at `at_most`
    (enough to compare with a threshold without counting a large pool on every serve)."""
    ids = _filtered(select(Problem.id), player, None).where(Problem.served_count == 0)
    if at_most is not None:
        ids = ids.limit(at_most)
    return session.scalar(select(func.count()).select_from(ids.subquery())) or 0


def problem_view(session: Session, problem: Problem) -> dict[str, Any]:
    board = chess.Board(problem.fen)
    blunder = chess.Move.from_uci(problem.blunder_uci)
    blunder_san = board.san(blunder)
    board.push(blunder)
    puzzle_fen = board.fen()
    sans = []
    for uci in problem.solution:
        move = chess.Move.from_uci(uci)
        sans.append(board.san(move))
        board.push(move)
    game = session.get(Game, problem.game_id)
    return {
        "id": problem.id,
        "fen": problem.fen,
        "blunder": {"uci": problem.blunder_uci, "san": blunder_san},
        "puzzle_fen": puzzle_fen,
        "solution_length": len(problem.solution),
        "solver": problem.solver_color,
        "kind": problem.kind,
        "themes": list(problem.themes),
        "rating": problem.rating,
        "game": {
            "id": problem.game_id,
            "ply": problem.ply,
            "white": game.white_name if game else None,
            "black": game.black_name if game else None,
            "url": f"/games/{problem.game_id}#ply={problem.ply}",
        },
        "served_count": problem.served_count,
        "attempts": problem.attempts,
        "successes": problem.successes,
        "last_served_at": problem.last_served_at.isoformat() if problem.last_served_at else None,
        "_solution_san": sans,
    }


def problem_by_id(session: Session, problem_id: str) -> dict[str, Any]:
    """One puzzle as served (without its solution); NotFound when unknown."""
    row = session.get(Problem, problem_id)
    if row is None:
        raise NotFound(f"no puzzle {problem_id!r}")
    return public(problem_view(session, row))


def public(view: dict[str, Any]) -> dict[str, Any]:
    """A puzzle as served: without its solution."""
    return {k: v for k, v in view.items() if not k.startswith("_")}


def record_attempt(session: Session, problem_id: str, moves_uci: list[str]) -> dict[str, Any]:
    """Check the solver's moves (theirs only; the replies are the puzzle's) against the
    solution. An attempt that ends, solved or wrong, counts once; a correct beginning counts
    nothing yet and returns the reply to play. Returns `correct`, `complete`, `reply`, and on
    a wrong move its index and the expected move. InvalidInput for a malformed or illegal move
    or too many moves, NotFound for an unknown puzzle; nothing is written then."""
    problem = session.get(Problem, problem_id)
    if problem is None:
        raise NotFound(f"no puzzle {problem_id!r}")
    if not moves_uci:
        raise InvalidInput("moves: give at least one move (UCI, e.g. e2e4)")
    board = chess.Board(problem.fen)
    board.push_uci(problem.blunder_uci)
    solution = [chess.Move.from_uci(u) for u in problem.solution]
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
    if result["complete"] or not result["correct"]:
        session.execute(
            update(Problem)
            .where(Problem.id == problem_id)
            .values(
                attempts=Problem.attempts + 1,
                successes=Problem.successes + (1 if result["complete"] else 0),
            )
        )
        session.refresh(problem)
    result["attempts"], result["successes"] = problem.attempts, problem.successes
    if result["complete"]:
        result["solution"] = list(problem.solution)
    return result


def pool_view(session: Session, player: str | None = None) -> dict[str, Any]:
    """Totals, never-served count, by theme, and what is left to search."""
    base = _filtered(select(func.count(Problem.id)), player, None)
    total = session.scalar(base) or 0
    unserved = session.scalar(base.where(Problem.served_count == 0)) or 0
    theme_rows = session.execute(
        _filtered(
            select(
                ProblemTheme.theme,
                func.count(Problem.id),
                func.sum(func.coalesce(Problem.served_count, 0)),
            )
            .join(Problem, Problem.id == ProblemTheme.problem_id)
            .group_by(ProblemTheme.theme),
            player,
            None,
        )
    ).all()
    unserved_by_theme: dict[str, int] = dict(
        session.execute(
            _filtered(
                select(ProblemTheme.theme, func.count(Problem.id))
                .join(Problem, Problem.id == ProblemTheme.problem_id)
                .where(Problem.served_count == 0)
                .group_by(ProblemTheme.theme),
                player,
                None,
            )
        ).all()
    )
    scans = select(func.count(ProblemScan.game_id))
    if player is not None:  # the player's games only, as every other figure here
        name = player.strip().lower()
        scans = scans.join(Game, Game.id == ProblemScan.game_id).where(
            or_(Game.white_id == name, Game.black_id == name)
        )
    scanned = session.scalar(scans) or 0
    if player is None:
        POOL_SIZE.labels("total").set(total)
        POOL_SIZE.labels("never_served").set(unserved)
    return {
        "player": player,
        "total": total,
        "never_served": unserved,
        "by_theme": {
            theme: {"total": count, "never_served": unserved_by_theme.get(theme, 0)}
            for theme, count, _ in sorted(theme_rows, key=lambda r: (-r[1], r[0]))
        },
        "games_searched": scanned,
        "games_to_search": len(unsearched_games(session, player)),
    }


def build(ctx: Context) -> Service:
    worker = ProblemsWorker(ctx)
    return Service(
        name="problems",
        handlers={
            topics.ANALYSIS_COMPLETED: worker.handle,
            topics.PROBLEMS_REQUESTED: worker.handle,
        },
        retry=RETRY,
        record_event_ids=False,  # idempotent: one scan per game and version, ids by game+ply
        description="puzzles from analysed games, validated for a unique solution",
        component=worker,
    )
