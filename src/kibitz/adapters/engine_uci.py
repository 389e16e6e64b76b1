"""The engine port (`kibitz.ports.Engine`): a pool of Stockfish processes driven over UCI
by python-chess.

Each search runs at a fixed node budget (reproducible, like Lichess's fishnet). Engines are
handed out by priority: a waiting search of a lower priority number always gets the next free
engine first (FIFO within a priority), so interactive work overtakes queued batch work at the
next position. A priority may be a function, read when an engine is handed out, so a job moved
to another lane moves its waiting searches too. An engine that dies is restarted and the
search is run again.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import chess
import chess.engine

from kibitz.domain.engine import FINISHED, EngineEval
from kibitz.domain.judgment import Score
from kibitz.errors import EngineUnavailable
from kibitz.runtime import metrics

log = logging.getLogger("kibitz.engine")
T = TypeVar("T")


class _Protocol(chess.engine.UciProtocol):
    """python-chess's UCI protocol keeping the raw principal variation of the last `info`
    line. Asking python-chess for the score only and reading the final line's moves here saves
    it from parsing and validating the PV of every intermediate line (two thirds of this
    process's CPU in a profile), CPU the engines on the same machine need."""

    last_pv: str = ""

    def _line_received(self, line: str) -> None:
        if line.startswith("info ") and " pv " in line:
            self.last_pv = line.split(" pv ", 1)[1]
        super()._line_received(line)


class _Slot:
    def __init__(self, index: int) -> None:
        self.index = index
        self.transport: asyncio.SubprocessTransport | None = None
        self.protocol: _Protocol | None = None


class EnginePool:
    """N Stockfish processes; `analyse` waits for one by priority (0 first)."""

    def __init__(self, path: str, size: int, *, threads: int = 1, hash_mb: int = 32) -> None:
        self.path = path
        self.size = size
        self.threads = threads
        self.hash_mb = hash_mb
        self.name = "stockfish"
        self._slots = [_Slot(i) for i in range(size)]
        self._free: list[_Slot] = []
        self._waiters: list[tuple[int, Callable[[], int], asyncio.Future[_Slot]]] = []
        self._seq = itertools.count()
        self.restarts = 0
        self.searches = 0
        self.busy_seconds = 0.0  # summed over engines: utilisation = busy / (wall * size)

    async def start(self) -> None:
        await asyncio.gather(*(self._spawn(slot) for slot in self._slots))
        self._free = list(self._slots)

    async def _spawn(self, slot: _Slot) -> None:
        try:
            transport, protocol = await _Protocol.popen(self.path)
        except OSError as exc:
            raise EngineUnavailable(f"cannot start the engine {self.path!r}: {exc}") from None
        try:
            await protocol.initialize()
        except (TimeoutError, chess.engine.EngineError) as exc:
            transport.close()
            raise EngineUnavailable(f"{self.path!r} does not speak UCI: {exc}") from None
        await protocol.configure({"Threads": self.threads, "Hash": self.hash_mb})
        self.name = str(protocol.id.get("name", "stockfish"))[:64]
        slot.transport, slot.protocol = transport, protocol

    async def close(self) -> None:
        for slot in self._slots:
            if slot.protocol is not None:
                try:
                    await asyncio.wait_for(slot.protocol.quit(), 2.0)
                except (TimeoutError, chess.engine.EngineError, OSError):
                    pass
            if slot.transport is not None:
                slot.transport.close()
            slot.protocol = slot.transport = None
        for _, _, waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()
        self._waiters.clear()

    def pids(self) -> list[int]:
        return [s.transport.get_pid() for s in self._slots if s.transport is not None]

    async def _acquire(self, priority: Callable[[], int]) -> _Slot:
        if self._free and not self._waiters:
            return self._free.pop()
        waiter: asyncio.Future[_Slot] = asyncio.get_running_loop().create_future()
        self._waiters.append((next(self._seq), priority, waiter))
        metrics.ENGINE_WAITING.inc()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release(waiter.result())  # handed over as we were cancelled
            raise
        finally:
            metrics.ENGINE_WAITING.dec()

    def _release(self, slot: _Slot) -> None:
        self._waiters = [w for w in self._waiters if not w[2].done()]  # drop cancelled ones
        if not self._waiters:
            self._free.append(slot)
            return
        best = min(range(len(self._waiters)), key=lambda i: (self._waiters[i][1](), i))
        _, _, waiter = self._waiters.pop(best)
        waiter.set_result(slot)

    async def analyse(
        self, board: chess.Board, nodes: int, priority: int | Callable[[], int] = 0
    ) -> EngineEval:
        """Search `board` (its move history is sent too) for `nodes` nodes."""
        if board.is_game_over(claim_draw=False):
            return FINISHED

        async def search(protocol: _Protocol) -> EngineEval:
            protocol.last_pv = ""
            info = await protocol.analyse(
                board, chess.engine.Limit(nodes=nodes), info=chess.engine.INFO_SCORE
            )
            return _to_eval(info, protocol.last_pv.split(), nodes)

        return await self._with_engine(search, nodes, priority)

    async def analyse_lines(
        self,
        board: chess.Board,
        nodes: int,
        lines: int,
        priority: int | Callable[[], int] = 0,
    ) -> list[EngineEval]:
        """The `lines` best lines of `board` (MultiPV), best first; [] when the game is over."""
        if board.is_game_over(claim_draw=False):
            return []

        async def search(protocol: _Protocol) -> list[EngineEval]:
            infos = await protocol.analyse(
                board,
                chess.engine.Limit(nodes=nodes),
                multipv=lines,
                info=chess.engine.INFO_SCORE | chess.engine.INFO_PV,
            )
            return [
                _to_eval(info, [m.uci() for m in info.get("pv", [])], nodes)
                for info in infos
                if info.get("pv")
            ]

        return await self._with_engine(search, nodes, priority)

    async def _with_engine(
        self,
        search: Callable[[_Protocol], Awaitable[T]],
        nodes: int,
        priority: int | Callable[[], int],
    ) -> T:
        """Run `search` on the next free engine (by priority); an engine that dies is
        restarted and the search run again once."""
        slot = await self._acquire(priority if callable(priority) else (lambda: priority))
        try:
            for attempt in (1, 2):
                if slot.protocol is None or slot.transport is None:
                    await self._spawn(slot)
                assert slot.protocol is not None
                began = time.perf_counter()
                try:
                    result = await search(slot.protocol)
                except (chess.engine.EngineTerminatedError, chess.engine.EngineError) as exc:
                    log.warning("engine %d failed (%s); restarting it", slot.index, exc)
                    self.restarts += 1
                    if slot.transport is not None:
                        slot.transport.close()
                    slot.protocol = slot.transport = None
                    if attempt == 2:
                        raise EngineUnavailable(f"the engine failed twice: {exc}") from None
                    continue
                spent = time.perf_counter() - began
                self.searches += 1
                self.busy_seconds += spent
                metrics.ENGINE_SEARCHES.labels(str(nodes)).inc()
                metrics.ENGINE_BUSY_SECONDS.inc(spent)
                return result
            raise AssertionError("unreachable")
        finally:
            self._release(slot)


def _to_eval(info: chess.engine.InfoDict, pv_uci: list[str], nodes: int) -> EngineEval:
    """The evaluation from python-chess's info (score) and the final line's raw PV (checked
    move by move when it is turned into SAN)."""
    pov = info.get("score")
    score: Score | None = None
    if pov is not None:
        white = pov.white()
        mate = white.mate()
        if mate is not None and mate != 0:
            score = Score(mate=mate)
        elif mate is None:
            score = Score(cp=white.score())
    pv = tuple(pv_uci)
    return EngineEval(
        score=score,
        best_uci=pv[0] if pv else None,
        pv_uci=pv,
        depth=info.get("depth"),
        nodes=nodes,
    )
