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
    """python-chess's UCI protocol (the process, the options, the position line)."""


class _FixedNodes(chess.engine.BaseCommand[EngineEval]):
    """One search of `board` at a fixed node budget, as a command on python-chess's protocol
    (its extension point: `Protocol.communicate`). python-chess's `analyse` parses every
    `info` line into objects and queues it for a consumer; a fixed-node search needs only the
    last line's score, depth and principal variation, so this keeps that line and reads it
    once, at `bestmove`. The options and the new-game handshake are set as `analyse` sets
    them. A third less Python time per search (on the 2-core machine, `analyse` with the score
    only against this: 0.82-0.93 → 0.56-0.63 ms at 300 nodes, 2.0 → 1.4 ms at 5,000)."""

    def __init__(self, engine: _Protocol, board: chess.Board, nodes: int) -> None:
        super().__init__(engine)
        self.engine = engine
        self.board = board
        self.nodes = nodes
        self.last_info = ""
        self.sent_isready = False

    def start(self) -> None:
        engine = self.engine
        if "Ponder" in engine.options:
            engine._setoption("Ponder", False)
        if "MultiPV" in engine.options:
            engine._setoption("MultiPV", 1)
        if engine.first_game or engine.game is not None:
            engine.game = None
            engine._ucinewgame()
            self.sent_isready = True
            engine._isready()
        else:
            self._go()

    def _go(self) -> None:
        self.sent_isready = False
        self.engine._position(self.board)
        self.engine.send_line(f"go nodes {max(1, self.nodes)}")

    def line_received(self, line: str) -> None:
        if line.startswith("info ") and " score " in line:
            self.last_info = line
        elif line.startswith("bestmove"):
            if not self.result.done():
                try:
                    found = _from_info(self.last_info, line, self.board.turn, self.nodes)
                except (ValueError, IndexError):
                    # Output that is not UCI: an engine error (the pool restarts the engine and
                    # searches once more), not a traceback.
                    unreadable = f"unreadable engine output: {self.last_info!r} / {line!r}"
                    self.result.set_exception(chess.engine.EngineError(unreadable))
                else:
                    self.result.set_result(found)
            self.set_finished()
        elif line.strip() == "readyok" and self.sent_isready:
            self._go()

    def cancel(self) -> None:
        self.engine.send_line("stop")


def _from_info(info: str, bestmove: str, turn: chess.Color, nodes: int) -> EngineEval:
    """The evaluation in a search's last `info` line (score from the side to move, made
    White's, as python-chess's `PovScore.white()` does; mate 0 has no score)."""
    tokens = info.split()
    score: Score | None = None
    depth: int | None = None
    pv: tuple[str, ...] = ()
    sign = 1 if turn == chess.WHITE else -1
    for i, token in enumerate(tokens):
        if token == "depth" and depth is None:
            depth = int(tokens[i + 1])
        elif token == "score":
            kind, value = tokens[i + 1], int(tokens[i + 2])
            if kind == "cp":
                score = Score(cp=sign * value)
            elif kind == "mate" and value != 0:
                score = Score(mate=sign * value)
        elif token == "pv":
            pv = tuple(tokens[i + 1 :])
            break
    if not pv:
        best = bestmove.split()[1:2]
        pv = tuple(m for m in best if m != "(none)")
    return EngineEval(
        score=score, best_uci=pv[0] if pv else None, pv_uci=pv, depth=depth, nodes=nodes
    )


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
            return await protocol.communicate(lambda engine: _FixedNodes(engine, board, nodes))

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
    """The evaluation from a line of python-chess's MultiPV analysis."""
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
