"""Read side: a match as the person sees it, and as the matches service stored it."""

from __future__ import annotations

from typing import Any

import chess
from sqlalchemy.orm import Session

from kibitz.adapters.store_models import MatchRow
from kibitz.domain import matches as rules
from kibitz.errors import NotFound


def _state(session: Session, match_id: str) -> dict[str, Any] | None:
    row = session.get(MatchRow, match_id)
    return dict(row.state) if row is not None else None


def match_view(session: Session, match_id: str) -> dict[str, Any]:
    """What the person sees: the rounds with anonymous letters, the answers once voting opens,
    who was who once a round is over, scores and the ranking."""
    raw = _state(session, match_id)
    if raw is None:
        raise NotFound(f"no match {match_id!r} (a new one appears within a moment)")
    state = rules.Match.from_json(raw)
    rounds = []
    for rnd in state.rounds:
        board = chess.Board(rnd.fen)
        open_answers = rnd.status in ("voting", "completed")
        answers = []
        for pid, response in sorted(rnd.responses.items(), key=lambda kv: rnd.letters[kv[0]]):
            if not open_answers and pid != state.person:
                continue
            move = chess.Move.from_uci(response["move"])
            answers.append(
                {
                    "letter": rnd.letters[pid],
                    "move": response["move"],
                    "san": board.san(move),
                    "reason": response["reason"],
                    "mine": pid == state.person,
                    **(
                        {
                            "who": _name(state, pid),
                            "engine_points": rnd.engine_points.get(pid, 0),
                            "votes": rnd.vote_points.get(pid, 0),
                        }
                        if rnd.status == "completed"
                        else {}
                    ),
                }
            )
        rounds.append(
            {
                "number": rnd.number,
                "fen": rnd.fen,
                "status": rnd.status,
                "deadline": rnd.deadline,
                "my_letter": rnd.letters.get(state.person),
                "letters": sorted(rnd.letters.values()),
                "answered": len(rnd.responses),
                "voted": len(rnd.votes),
                "i_answered": state.person in rnd.responses,
                "i_voted": state.person in rnd.votes,
                "answers": answers,
                "best": _best_san(rnd),
                "robots": [r["id"] for r in rnd.robots],
            }
        )
    standings = [
        {
            "who": s.who.replace("_", " "),
            "members": list(s.members),
            "score": s.score,
            "rounds": s.rounds,
            "per_round": s.per_round,
        }
        for s in rules.standings(state)
    ]
    return {
        "id": state.id,
        "status": state.status,
        "rounds_total": state.rounds_total,
        "robots_per_round": state.robots_per_round,
        "source": state.source,
        "round": len(state.rounds),
        "rounds": rounds,
        "standings": standings,
        "ranking": [s["who"] for s in standings],
        "ranked_by": "points per round played; a personality's instances count as one",
    }


def _best_san(rnd: rules.Round) -> str | None:
    """The engine's move, once the round is scored."""
    for evaluation in rnd.evaluations.values():
        best = evaluation.get("best")
        if best:
            board = chess.Board(rnd.fen)
            return board.san(chess.Move.from_uci(best))
    return None


def _name(state: rules.Match, pid: str) -> str:
    if pid == state.person:
        return "you"
    identity = state.identities.get(pid, "robot")
    return f"{identity.replace('_', ' ')} ({pid})"


def stored_state(session: Session, match_id: str) -> dict[str, Any] | None:
    """The match's state as the matches service stored it (None if it never did)."""
    return _state(session, match_id)
