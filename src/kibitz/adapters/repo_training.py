"""The training repository (`kibitz.ports.store.Training`) on SQLAlchemy."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import chess
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from kibitz.adapters.store_models import (
    Analysis,
    CardAnswer,
    CardReview,
    Game,
    MoveEval,
    Player,
    Problem,
    PuzzleAttempt,
    RatedFirst,
    Solver,
    TrainingCard,
    TrainingScan,
)
from kibitz.adapters.store_sql import SqlStore
from kibitz.domain.judgment import stored_score
from kibitz.domain.training import START_RATING, START_RD, START_VOL, CardSource, NewCard, Rating
from kibitz.ports.store import Card


def _card(row: TrainingCard) -> Card:
    return Card(
        id=row.id,
        player_id=row.player_id,
        kind=row.kind,
        game_id=row.game_id,
        ply=row.ply,
        fen=row.fen,
        problem_id=row.problem_id,
        played_uci=row.played_uci,
        best_uci=row.best_uci,
        judgment=row.judgment,
        schedule=dict(row.schedule),
        due=row.due,
        reviews=row.reviews,
        lapses=row.lapses,
    )


def puzzle_rating(problem: Problem) -> Rating:
    """A puzzle's Glicko-2 rating; never rated, its estimate with the starting deviation."""
    if problem.glicko_rating is None:
        return Rating(float(problem.rating), START_RD, START_VOL)
    return Rating(
        problem.glicko_rating, problem.glicko_rd or START_RD, problem.glicko_vol or START_VOL
    )


def _source(session: Session, game_id: str, player: str | None) -> CardSource | None:
    game = session.get(Game, game_id)
    analysis = session.get(Analysis, game_id)
    if game is None or analysis is None or analysis.status != "done" or not game.moves_uci:
        return None
    if game.variant not in ("standard", "fromPosition"):
        return None
    sides = {game.white_id: True, game.black_id: False}
    sides.pop(None, None)
    if player is not None:  # asked for by the player: their side, known here or not
        trainees = {k: v for k, v in sides.items() if k == player}
    else:  # a game analysed: the sides of the players kibitz syncs
        known = set(session.scalars(select(Player.id).where(Player.id.in_(list(sides)))))
        trainees = {k: v for k, v in sides.items() if k in known}
    if not trainees:
        return None  # nobody here trains on this game: nothing more to read
    rows = {
        phase: session.execute(
            select(MoveEval.ply, MoveEval.cp, MoveEval.mate, MoveEval.best_uci)
            .where(MoveEval.game_id == game_id, MoveEval.phase == phase)
            .order_by(MoveEval.ply)
        ).all()
        for phase in ("deep", "quick")
    }
    evals = rows["deep"] or rows["quick"]
    moves = game.moves_uci.split()
    by_ply = {r.ply: r for r in evals}
    puzzles = []
    for problem in session.scalars(select(Problem).where(Problem.game_id == game_id)):
        board = chess.Board(problem.fen)
        board.push_uci(problem.blunder_uci)
        puzzles.append((problem.id, board.fen(), problem.ply + 1))
    return CardSource(
        game_id=game_id,
        initial_fen=game.initial_fen,
        moves_uci=moves,
        scores=[
            stored_score(by_ply[p].cp, by_ply[p].mate) if p in by_ply else None
            for p in range(1, len(moves) + 1)
        ],
        best_ucis=[by_ply[p].best_uci if p in by_ply else None for p in range(1, len(moves) + 1)],
        start_score=stored_score(analysis.start_cp, analysis.start_mate),
        trainees={str(k): v for k, v in trainees.items()},
        puzzles=puzzles,
    )


def _ensure_solver(store: SqlStore, session: Session, player: str) -> None:
    """The solver's row, at the starting rating when new (two at once make one)."""
    session.execute(
        store.insert(Solver)
        .values(
            player_id=player,
            rating=START_RATING,
            rd=START_RD,
            vol=START_VOL,
            rated_attempts=0,
            best_streak=0,
        )
        .on_conflict_do_nothing()
    )


class SqlTraining:
    def __init__(self, store: SqlStore) -> None:
        self.store = store

    async def card_source(self, game_id: str, player: str | None) -> CardSource | None:
        return await self.store.read(lambda s: _source(s, game_id, player))

    async def unscanned(self, player: str, limit: int) -> list[str]:
        def read(session: Session) -> list[str]:
            scanned = select(TrainingScan.game_id).where(TrainingScan.player_id == player)
            query = (
                select(Game.id)
                .join(Analysis, Analysis.game_id == Game.id)
                .where(
                    Analysis.status == "done",
                    or_(Game.white_id == player, Game.black_id == player),
                    Game.id.not_in(scanned),
                )
                .order_by(Game.id)
                .limit(limit)
            )
            return list(session.scalars(query))

        return await self.store.read(read)

    async def add_cards(
        self, game_id: str, players: Sequence[str], cards: Sequence[NewCard]
    ) -> int:
        def write(session: Session) -> int:
            added = 0
            if cards:
                rows = [asdict(c) for c in cards]
                result = session.execute(
                    self.store.insert(TrainingCard)
                    .values(rows)
                    .on_conflict_do_nothing(index_elements=["id"])
                    .returning(TrainingCard.id)
                )
                added = len(result.all())
            if players:
                session.execute(
                    self.store.insert(TrainingScan)
                    .values([{"player_id": p, "game_id": game_id} for p in players])
                    .on_conflict_do_nothing()
                )
            return added

        return await self.store.run(write)

    async def due(self, player: str, now: float, limit: int) -> tuple[list[Card], int, int]:
        def read(session: Session) -> tuple[list[Card], int, int]:
            mine = TrainingCard.player_id == player
            rows = session.scalars(
                select(TrainingCard)
                .where(mine, TrainingCard.due <= now)
                .order_by(TrainingCard.due, TrainingCard.id)
                .limit(limit)
            )
            due = session.scalar(select(func.count()).where(mine, TrainingCard.due <= now))
            total = session.scalar(select(func.count()).where(mine))
            return [_card(r) for r in rows], int(due or 0), int(total or 0)

        return await self.store.read(read)

    async def card(self, card_id: str) -> Card | None:
        def read(session: Session) -> Card | None:
            row = session.get(TrainingCard, card_id)
            return _card(row) if row is not None else None

        return await self.store.read(read)

    async def known_answer(self, card_id: str, move_uci: str) -> tuple[bool, float | None] | None:
        def read(session: Session) -> tuple[bool, float | None] | None:
            row = session.get(CardAnswer, (card_id, move_uci))
            return (row.correct, row.loss) if row is not None else None

        return await self.store.read(read)

    async def remember_answer(
        self, card_id: str, move_uci: str, correct: bool, loss: float | None
    ) -> None:
        def write(session: Session) -> None:
            session.execute(
                self.store.insert(CardAnswer)
                .values(card_id=card_id, move_uci=move_uci, correct=correct, loss=loss)
                .on_conflict_do_nothing()
            )

        await self.store.run(write)

    async def review(
        self,
        card: Card,
        move_uci: str,
        correct: bool,
        schedule: dict[str, Any],
        due: float,
        at: float,
    ) -> bool:
        def write(session: Session) -> bool:
            changed = session.execute(
                update(TrainingCard)
                .where(TrainingCard.id == card.id, TrainingCard.reviews == card.reviews)
                .values(
                    schedule=schedule,
                    due=due,
                    reviews=TrainingCard.reviews + 1,
                    lapses=TrainingCard.lapses + (0 if correct else 1),
                    last_review=at,
                )
            )
            if not changed.rowcount:  # type: ignore[attr-defined]
                return False
            session.add(
                CardReview(
                    card_id=card.id,
                    player_id=card.player_id,
                    at=at,
                    move_uci=move_uci,
                    correct=correct,
                    due_after=due,
                )
            )
            return True

        return await self.store.run(write)

    async def rate_attempt(
        self,
        player: str,
        problem_id: str,
        solved: bool,
        at: float,
        rate: Callable[[Rating, Rating, bool], tuple[Rating, Rating]],
    ) -> tuple[Rating, Rating, bool] | None:
        def write(session: Session) -> tuple[Rating, Rating, bool] | None:
            problem = session.scalars(
                select(Problem).where(Problem.id == problem_id).with_for_update()
            ).first()
            if problem is None:
                return None
            first = session.execute(
                self.store.insert(RatedFirst)
                .values(player_id=player, problem_id=problem_id)
                .on_conflict_do_nothing()
                .returning(RatedFirst.player_id)
            ).first()
            _ensure_solver(self.store, session, player)
            solver = session.scalars(
                select(Solver).where(Solver.player_id == player).with_for_update()
            ).one()
            before_puzzle = puzzle_rating(problem)
            before_solver = Rating(solver.rating, solver.rd, solver.vol)
            session.add(
                PuzzleAttempt(
                    player_id=player,
                    problem_id=problem_id,
                    at=at,
                    solved=solved,
                    first=first is not None,
                    puzzle_rating=before_puzzle.rating,
                    themes=list(problem.themes),
                )
            )
            if first is None:
                return before_solver, before_puzzle, False
            after_solver, after_puzzle = rate(before_solver, before_puzzle, solved)
            solver.rating, solver.rd, solver.vol = (
                after_solver.rating,
                after_solver.rd,
                after_solver.vol,
            )
            solver.rated_attempts = (solver.rated_attempts or 0) + 1
            problem.glicko_rating = after_puzzle.rating
            problem.glicko_rd = after_puzzle.rd
            problem.glicko_vol = after_puzzle.vol
            problem.rated_plays = (problem.rated_plays or 0) + 1
            return after_solver, after_puzzle, True

        return await self.store.run(write)

    async def solver(self, player: str) -> tuple[Rating, int, int]:
        def read(session: Session) -> tuple[Rating, int, int]:
            row = session.get(Solver, player)
            if row is None:
                return Rating(START_RATING, START_RD, START_VOL), 0, 0
            return Rating(row.rating, row.rd, row.vol), row.rated_attempts, row.best_streak

        return await self.store.read(read)

    async def streak_ended(self, player: str, score: int) -> int:
        def write(session: Session) -> int:
            _ensure_solver(self.store, session, player)
            session.execute(
                update(Solver)
                .where(Solver.player_id == player, Solver.best_streak < score)
                .values(best_streak=score)
            )
            return int(
                session.scalar(select(Solver.best_streak).where(Solver.player_id == player)) or 0
            )

        return await self.store.run(write)
