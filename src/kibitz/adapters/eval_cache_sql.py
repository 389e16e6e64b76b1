"""The evaluation cache (`kibitz.ports.EvalCache`) in the store's `position_evals` table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from kibitz.adapters.store_models import PositionEval
from kibitz.adapters.store_sql import SqlStore
from kibitz.domain.engine import EngineEval
from kibitz.domain.judgment import stored_score

CHUNK = 500  # EPDs per IN (…) query


class SqlEvalCache:
    def __init__(self, store: SqlStore) -> None:
        self.store = store

    async def lookup(self, epds: Sequence[str], nodes: int) -> dict[str, EngineEval]:
        return await self.store.read(lambda s: _lookup(s, epds, nodes))

    async def keep(self, found: Sequence[tuple[str, EngineEval]]) -> None:
        now = datetime.now(UTC)
        rows = {
            (epd, r.nodes): {
                "epd": epd,
                "nodes": r.nodes,
                "cp": r.score.cp if r.score else None,
                "mate": r.score.mate if r.score else None,
                "best_uci": r.best_uci,
                "pv_uci": " ".join(r.pv_uci),
                "depth": r.depth,
                "created_at": now,
            }
            for epd, r in found
            if r.nodes
        }
        if not rows:
            return
        statement = self.store.insert(PositionEval).on_conflict_do_nothing()
        await self.store.run(lambda s: s.execute(statement, list(rows.values())))


def _lookup(session: Session, epds: Sequence[str], nodes: int) -> dict[str, EngineEval]:
    found: dict[str, EngineEval] = {}
    unique = list(dict.fromkeys(epds))
    for start in range(0, len(unique), CHUNK):
        rows = session.scalars(
            select(PositionEval)
            .where(PositionEval.epd.in_(unique[start : start + CHUNK]), PositionEval.nodes >= nodes)
            .order_by(PositionEval.nodes)
        )
        for r in rows:
            if r.epd in found:
                continue  # the smallest budget at least as large as asked
            found[r.epd] = EngineEval(
                score=stored_score(r.cp, r.mate),
                best_uci=r.best_uci,
                pv_uci=tuple((r.pv_uci or "").split()),
                depth=r.depth,
                nodes=r.nodes,
            )
    return found
