"""What an engine search gives back, as a value the services and the domain share."""

from __future__ import annotations

from dataclasses import dataclass

from kibitz.domain.judgment import Score


@dataclass(frozen=True)
class EngineEval:
    """One search's result. `score` is from White's side, None for a finished position."""

    score: Score | None
    best_uci: str | None
    pv_uci: tuple[str, ...]
    depth: int | None
    nodes: int


FINISHED = EngineEval(score=None, best_uci=None, pv_uci=(), depth=0, nodes=0)
