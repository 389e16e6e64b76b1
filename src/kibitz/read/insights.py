"""Insights across a player's analysed games (Lichess's insights are the anchor): accuracy and
average centipawn loss by opening family, game phase, time left on the clock, colour and
result; the themes of their blunders; the trend by month. Every number carries the games
behind it (the drill-down). The per-move numbers are `kibitz.domain.insights`'s."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from kibitz.adapters.repo_analyses import game_input
from kibitz.adapters.store_models import Analysis, Game, MoveEval
from kibitz.domain.analysis import PlyEval
from kibitz.domain.insights import MoveFact, move_facts, opening_family, result_for
from kibitz.domain.judgment import stored_score
from kibitz.errors import NotFound

MAX_GAMES = 1000  # the player's newest analysed games
DIMENSIONS = ("colour", "result", "phase", "clock", "opening", "month")
SHOWN_GAMES = 200  # game ids listed per group (the count says how many in all)


class _Group:
    def __init__(self) -> None:
        self.moves = 0
        self.accuracy = 0.0
        self.loss = 0
        self.games: dict[str, None] = {}
        self.blunders = 0

    def add(self, game_id: str, fact: MoveFact) -> None:
        self.moves += 1
        self.accuracy += fact.accuracy
        self.loss += fact.cp_loss
        self.blunders += 1 if fact.judgment == "Blunder" else 0
        self.games.setdefault(game_id)

    def view(self) -> dict[str, Any]:
        ids = list(self.games)
        return {
            "moves": self.moves,
            "accuracy": round(self.accuracy / self.moves, 1) if self.moves else None,
            "acpl": round(self.loss / self.moves, 1) if self.moves else None,
            "blunders": self.blunders,
            "games": len(ids),
            "game_ids": ids[:SHOWN_GAMES],
        }


def insights(session: Session, player: str) -> dict[str, Any]:
    """The player's insights over their newest MAX_GAMES analysed games; NotFound when none is
    analysed."""
    games = session.execute(
        select(Game, Analysis.phase)
        .join(Analysis, Analysis.game_id == Game.id)
        .where(
            Analysis.status == "done",
            or_(Game.white_id == player, Game.black_id == player),
            Game.variant.in_(("standard", "fromPosition")),
        )
        .order_by(Game.played_at_ms.desc().nulls_last(), Game.id)
        .limit(MAX_GAMES)
    ).all()
    if not games:
        raise NotFound(f"no analysed game of {player!r} yet: analyse their games first")
    groups: dict[str, dict[str, _Group]] = {d: defaultdict(_Group) for d in DIMENSIONS}
    overall = _Group()
    themes: dict[str, _Group] = defaultdict(_Group)
    for game, phase in games:
        rows = list(
            session.scalars(
                select(MoveEval)
                .where(MoveEval.game_id == game.id, MoveEval.phase == phase)
                .order_by(MoveEval.ply)
            )
        )
        if len(rows) != len(game.moves_uci.split()):
            continue  # evaluations missing for some plies: not comparable
        white = game.white_id == player
        keys = {
            "colour": "white" if white else "black",
            "result": result_for(game.result, white),
            "opening": opening_family(game.opening_name),
            "month": datetime.fromtimestamp(game.played_at_ms / 1000, UTC).strftime("%Y-%m")
            if game.played_at_ms is not None
            else "undated",
        }
        evals = [
            PlyEval(score=stored_score(r.cp, r.mate), best_uci=r.best_uci, line_san=r.line_san)
            for r in rows
        ]
        for fact in move_facts(game_input(game, evals), white):
            overall.add(game.id, fact)
            for dimension, key in keys.items():
                groups[dimension][key].add(game.id, fact)
            groups["phase"][fact.phase].add(game.id, fact)
            if fact.clock is not None:
                groups["clock"][fact.clock].add(game.id, fact)
            for theme in fact.themes:
                themes[theme].add(game.id, fact)
    return {
        "player": player,
        "games": len(overall.games),
        "overall": overall.view(),
        **{
            dimension: {key: g.view() for key, g in sorted(groups[dimension].items())}
            for dimension in DIMENSIONS
        },
        "blunder_themes": {
            theme: {"blunders": g.moves, "games": len(g.games), "game_ids": list(g.games)[:50]}
            for theme, g in sorted(themes.items(), key=lambda item: (-item[1].moves, item[0]))
        },
    }
