"""The engine port's twin: a recorded engine that replays evaluations Stockfish gave once, in
the spirit of lichess-puzzler's recorded-engine tests. Service tests run on it in milliseconds
and always see the same numbers.

A position not in the recording fails the test with the way to record it:
`KIBITZ_RECORD_ENGINE=1 pytest tests/service` searches the missing positions with the real
Stockfish (Debian's) and adds them to `tests/fixtures/recorded_engine.json`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import chess

from kibitz.domain.engine import FINISHED, EngineEval
from kibitz.domain.judgment import Score
from kibitz.ports import Engine, Priority

RECORDING = Path(__file__).parent.parent / "fixtures" / "recorded_engine.json"


def _key(board: chess.Board, nodes: int, lines: int) -> str:
    return f"{board.epd()}|{nodes}|{lines}"


def _dump(e: EngineEval) -> list[Any]:
    s = e.score
    return [s.cp if s else None, s.mate if s else None, list(e.pv_uci), e.depth]


def _load(row: list[Any], nodes: int) -> EngineEval:
    cp, mate, pv, depth = row
    score = Score(cp=cp) if cp is not None else Score(mate=mate) if mate else None
    return EngineEval(score, pv[0] if pv else None, tuple(pv), depth, nodes)


class NotRecorded(AssertionError):
    pass


class RecordedEngine:
    """Replays `RECORDING`; with `live` (record mode) searches what is missing and keeps it."""

    name = "stockfish (recorded)"

    def __init__(self, live: Engine | None = None, path: Path = RECORDING) -> None:
        self.path = path
        self.live = live
        self.recording: dict[str, list[list[Any]]] = (
            json.loads(path.read_text()) if path.exists() else {}
        )
        self.searches = 0
        self.priorities: list[int] = []  # the priority of each search, in the order asked
        self.changed = False

    async def _lines(
        self, board: chess.Board, nodes: int, lines: int, priority: Priority
    ) -> list[EngineEval]:
        self.searches += 1
        self.priorities.append(priority() if callable(priority) else priority)
        key = _key(board, nodes, lines)
        if key not in self.recording:
            if self.live is None:
                raise NotRecorded(
                    f"{key} is not recorded: run the test with KIBITZ_RECORD_ENGINE=1 once"
                )
            if lines == 1:
                found = [await self.live.analyse(board, nodes)]
            else:
                found = await self.live.analyse_lines(board, nodes, lines)
            self.recording[key] = [_dump(e) for e in found]
            self.changed = True
        return [_load(row, nodes) for row in self.recording[key]]

    async def analyse(self, board: chess.Board, nodes: int, priority: Priority = 0) -> EngineEval:
        if board.is_game_over(claim_draw=False):
            return FINISHED
        return (await self._lines(board, nodes, 1, priority))[0]

    async def analyse_lines(
        self, board: chess.Board, nodes: int, lines: int, priority: Priority = 0
    ) -> list[EngineEval]:
        if board.is_game_over(claim_draw=False):
            return []
        return await self._lines(board, nodes, lines, priority)

    def save(self) -> None:
        if self.changed:
            self.path.write_text(json.dumps(self.recording, indent=0, sort_keys=True) + "\n")


def recording_mode() -> bool:
    return os.environ.get("KIBITZ_RECORD_ENGINE") == "1"
