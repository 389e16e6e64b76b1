"""The matches repository (`kibitz.ports.store.Matches`) on SQLAlchemy."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import chess
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from kibitz.adapters.store_models import Game, MatchRow, MatchSubmission, MoveEval, Problem
from kibitz.adapters.store_sql import SqlStore
from kibitz.domain.judgment import Judgment, judge_move, stored_score
from kibitz.read.matches import _state


def choose_positions(
    session: Session, source: str, player: str | None, count: int
) -> list[dict[str, Any]]:
    """`count` positions where one strong move exists: puzzle starts from the problem pool
    (least served first), or positions of the player's analysed games where the move played
    was a mistake or a blunder (the engine's move was the strong one)."""
    if source == "problems":
        query = select(Problem).order_by(Problem.last_served_at.asc().nulls_first(), Problem.id)
        if player:
            name = player.strip().lower()
            query = query.where((Problem.white_id == name) | (Problem.black_id == name))
        out = []
        for problem in session.scalars(query.limit(count)):
            board = chess.Board(problem.fen)
            board.push_uci(problem.blunder_uci)
            out.append({"fen": board.fen(), "origin": f"puzzle {problem.id}"})
        return out
    name = (player or "").strip().lower()
    games = session.scalars(
        select(Game)
        .where((Game.white_id == name) | (Game.black_id == name))
        .order_by(Game.played_at_ms.desc().nulls_last(), Game.id)
    )
    out = []
    for game in games:
        evals = {
            e.ply: stored_score(e.cp, e.mate)
            for e in session.scalars(
                select(MoveEval).where(MoveEval.game_id == game.id, MoveEval.phase == "deep")
            )
        }
        if not evals:
            continue
        board = chess.Board(game.initial_fen) if game.initial_fen else chess.Board()
        previous = stored_score(15, None)
        for ply, uci in enumerate(game.moves_uci.split(), start=1):
            after = evals.get(ply)
            if previous is not None and after is not None:
                verdict = judge_move(previous, after, board.turn == chess.WHITE)
                if verdict is not None and verdict.judgment in (Judgment.MISTAKE, Judgment.BLUNDER):
                    out.append({"fen": board.fen(), "origin": f"game {game.id} ply {ply}"})
                    if len(out) >= count:
                        return out
            board.push_uci(uci)
            previous = after
    return out


class SqlMatches:
    def __init__(self, store: SqlStore) -> None:
        self.store = store

    async def state(self, match_id: str) -> dict[str, Any] | None:
        return await self.store.read(lambda s: _state(s, match_id))

    async def running(self) -> list[dict[str, Any]]:
        return await self.store.read(
            lambda s: [
                dict(r)
                for r in s.scalars(select(MatchRow.state).where(MatchRow.status == "running"))
            ]
        )

    async def save(
        self, match_id: str, person: str, status: str, state: dict[str, Any], now: float
    ) -> None:
        at = datetime.fromtimestamp(now, UTC)

        def write(session: Session) -> None:
            row = session.get(MatchRow, match_id)
            if row is None:
                row = MatchRow(id=match_id, person=person, created_at=at, events_applied=0)
                session.add(row)
            row.state = state
            row.status = status
            row.events_applied = (row.events_applied or 0) + 1
            row.updated_at = at

        await self.store.run(write)

    async def claim(self, match_id: str, number: int, participant: str, kind: str) -> bool:
        statement = (
            self.store.insert(MatchSubmission)
            .values(match_id=match_id, round=number, participant=participant, kind=kind)
            .on_conflict_do_nothing()
            .returning(MatchSubmission.kind)
        )
        return await self.store.run(lambda s: s.execute(statement).scalar() is not None)

    async def unclaim(self, match_id: str, number: int, participant: str, kind: str) -> None:
        await self.store.run(
            lambda s: s.execute(
                delete(MatchSubmission).where(
                    MatchSubmission.match_id == match_id,
                    MatchSubmission.round == number,
                    MatchSubmission.participant == participant,
                    MatchSubmission.kind == kind,
                )
            )
        )

    async def positions(self, source: str, player: str | None, count: int) -> list[dict[str, Any]]:
        return await self.store.read(lambda s: choose_positions(s, source, player, count))
