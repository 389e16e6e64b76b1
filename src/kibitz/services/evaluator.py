"""The evaluator: the one way a service gets a position searched.

Every engine policy lives here and only here: who goes first (one priority table), the
evaluation cache (looked up before, filled after every search that may be reused), the circuit
breaker (an engine that keeps failing is left alone for a while) and "this process has no
engine". Analysis, commentary, problems, matches and the robots all search through it.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, TypeVar

import chess

from kibitz.domain.engine import FINISHED, EngineEval
from kibitz.errors import EngineUnavailable
from kibitz.ports import Engine, EvalCache
from kibitz.runtime import metrics
from kibitz.runtime.breaker import CircuitBreaker

T = TypeVar("T")

Use = Literal[
    "live",  # someone is watching the game: ahead of everything
    "match",  # players wait for a round's scores
    "robot",  # a round's clock is running
    "interactive-quick",
    "interactive-deep",
    "batch-quick",
    "batch-deep",
    "problems",  # behind every analysis lane and phase
]
# Lower first. A user waiting (live, a match round, the interactive lane's quick pass) comes
# before their deep pass, which comes before batch work; puzzle search comes last.
PRIORITY: dict[Use, int] = {
    "live": -1,
    "match": 0,
    "robot": 0,
    "interactive-quick": 0,
    "interactive-deep": 1,
    "batch-quick": 2,
    "batch-deep": 3,
    "problems": 4,
}


# Positions searched lately, kept in memory (the deepest result of each): a player's games open
# the same way, and games analysed side by side reach the same positions before either has
# stored its results in the cache.
RECENT_POSITIONS = 10_000


def analysis_use(lane: str, phase: str) -> Use:
    use = f"{lane}-{phase}"
    if use in PRIORITY:
        return use
    raise ValueError(f"no engine priority for lane {lane!r}, phase {phase!r}")


class Evaluator:
    """Searches through the engine port with the cache and the breaker. The engine is attached
    once this process has started one (`attach`); until then every search raises
    EngineUnavailable naming who asked."""

    def __init__(
        self,
        cache: EvalCache | None,
        *,
        engine: Engine | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.cache = cache
        self.engine = engine
        self.breaker = breaker or CircuitBreaker("engine", failures_to_open=3)
        # With a cache only (KIBITZ_EVAL_CACHE=false means every position is searched):
        # searches under way, by position (budget, their priority now, the result to come),
        # and the results of the latest ones.
        self._searching: dict[str, tuple[int, Callable[[], int], asyncio.Future[EngineEval]]]
        self._searching = {}
        self._recent: OrderedDict[str, EngineEval] = OrderedDict()

    def attach(self, engine: Engine | None) -> None:
        self.engine = engine

    @property
    def available(self) -> bool:
        return self.engine is not None

    @property
    def name(self) -> str:
        return self.engine.name if self.engine is not None else "none"

    def _engine(self, who: str) -> Engine:
        if self.engine is None:
            raise EngineUnavailable(f"{who} needs the engine (no Stockfish in this process)")
        return self.engine

    async def _guarded(self, who: str, search: Callable[[Engine], Awaitable[T]]) -> T:
        engine = self._engine(who)
        if not self.breaker.allow():
            raise EngineUnavailable(f"{who}: the engine keeps failing; searches are paused")
        try:
            result = await search(engine)
        except EngineUnavailable:
            self.breaker.failure()
            raise
        self.breaker.success()
        return result

    async def evaluate(
        self, board: chess.Board, nodes: int, use: Use, *, who: str = "the evaluator"
    ) -> EngineEval:
        """The best line of `board` at `nodes` nodes: from the cache, else searched (and kept)."""
        found = await self.evaluate_all([board], nodes, lambda: use, who=who)
        return found[0][0]

    async def evaluate_all(
        self,
        boards: Sequence[chess.Board],
        nodes: int,
        use: Callable[[], Use],
        *,
        who: str = "the evaluator",
        on_cached: Callable[[int], Awaitable[None]] | None = None,
        on_searched: Callable[[], Awaitable[None]] | None = None,
    ) -> list[tuple[EngineEval, bool]]:
        """Every position's (evaluation, from the cache?) at `nodes` nodes. `use` is read each
        time an engine frees up, so work moved to another lane moves its waiting searches too.
        `on_cached(n)` is told how many came from the cache; `on_searched()` after each search.
        Fresh results go to the cache once all are in."""
        out, missing, epds = await self._from_cache(boards, nodes)
        if on_cached is not None:
            await on_cached(len(boards) - len(missing))
        if missing:
            self._engine(who)  # say so before anything is searched

            def priority() -> int:
                return PRIORITY[use()]

            async def one(i: int) -> None:
                shared = await self._shared(epds[i], nodes, priority)
                if shared is not None:
                    out[i] = (shared, True)
                else:
                    out[i] = (await self._search(boards[i], epds[i], nodes, priority, who), False)
                if on_searched is not None:
                    await on_searched()

            tasks = [asyncio.ensure_future(one(i)) for i in missing]
            try:
                await asyncio.gather(*tasks)
            except BaseException:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
            if self.cache is not None:
                fresh = {epds[i]: r for i in missing if (r := out[i]) is not None and r[0].nodes}
                await self.cache.keep([(epd, r[0]) for epd, r in fresh.items()])
        return [r for r in out if r is not None]

    async def _shared(self, epd: str, nodes: int, priority: Callable[[], int]) -> EngineEval | None:
        """The result of a search of the same position at ≥ `nodes` that another caller has
        under way at a priority at least as urgent as ours (waiting behind less urgent work
        would make us later than searching), or of one finished since our pass looked in the
        cache; None when there is none, or it failed."""
        if self.cache is None:
            return None
        known = self._recent.get(epd)
        if known is not None and (known.nodes or 0) >= nodes:
            metrics.EVAL_CACHE_HITS.inc()
            return known
        under_way = self._searching.get(epd)
        if under_way is None or under_way[0] < nodes or under_way[1]() > priority():
            return None
        try:
            found = await asyncio.shield(under_way[2])
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # we were cancelled, not the search we waited for
            return None
        except Exception:
            return None  # its search failed: ours may not
        metrics.EVAL_CACHE_HITS.inc()
        return found

    async def _search(
        self, board: chess.Board, epd: str, nodes: int, priority: Callable[[], int], who: str
    ) -> EngineEval:
        """Search `board` on the engine; with a cache, others asking for the same position
        meanwhile wait for this search, and its result is remembered."""
        if self.cache is None:
            return await self._guarded(who, lambda engine: engine.analyse(board, nodes, priority))
        future: asyncio.Future[EngineEval] = asyncio.get_running_loop().create_future()
        self._searching.setdefault(epd, (nodes, priority, future))
        try:
            found = await self._guarded(who, lambda engine: engine.analyse(board, nodes, priority))
        except BaseException:
            future.cancel()  # whoever waits on it searches for themselves
            raise
        finally:
            if self._searching.get(epd, (0, priority, None))[2] is future:
                del self._searching[epd]
        future.set_result(found)
        self._remember(epd, found)
        return found

    def _remember(self, epd: str, found: EngineEval) -> None:
        known = self._recent.get(epd)
        if known is None or (found.nodes or 0) >= (known.nodes or 0):
            self._recent[epd] = found
        self._recent.move_to_end(epd)
        while len(self._recent) > RECENT_POSITIONS:
            self._recent.popitem(last=False)

    async def _from_cache(
        self, boards: Sequence[chess.Board], nodes: int
    ) -> tuple[list[tuple[EngineEval, bool] | None], list[int], dict[int, str]]:
        """What the cache (and the rules: a finished game needs no search) already know, the
        indexes still to search, and the positions' keys (EPD) by index, each computed once."""
        out: list[tuple[EngineEval, bool] | None] = [None] * len(boards)
        todo: list[int] = []
        for i, board in enumerate(boards):
            if board.is_game_over(claim_draw=False):
                out[i] = (FINISHED, False)
            else:
                todo.append(i)
        keys = {i: boards[i].epd() for i in todo}
        epds = list(keys.values())
        cache: dict[str, EngineEval] = {}
        if self.cache is not None:
            for epd in epds:  # searched lately in this process, at this budget or deeper
                known = self._recent.get(epd)
                if known is not None and (known.nodes or 0) >= nodes:
                    cache[epd] = known
            rest = [epd for epd in epds if epd not in cache]
            if rest:
                cache |= await self.cache.lookup(rest, nodes)
        metrics.EVAL_CACHE_LOOKUPS.inc(len(epds))
        metrics.EVAL_CACHE_HITS.inc(sum(1 for e in epds if e in cache))
        missing = []
        for i, epd in keys.items():
            if epd in cache:
                out[i] = (cache[epd], True)
            else:
                missing.append(i)
        return out, missing, keys

    async def lines(
        self, board: chess.Board, nodes: int, lines: int, use: Use, *, who: str = "the evaluator"
    ) -> list[EngineEval]:
        """The `lines` best lines of `board` (MultiPV), best first; [] when the game is over.
        Not cached: the cache keeps one line per position."""
        if board.is_game_over(claim_draw=False):
            return []
        return await self._guarded(
            who, lambda engine: engine.analyse_lines(board, nodes, max(1, lines), PRIORITY[use])
        )
