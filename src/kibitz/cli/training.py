"""`kibitz train USERNAME`: review the cards due today in the terminal."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import chess
import typer

from kibitz.cli.common import _fail, _run, _settings, app, console


def text_board(fen: str) -> str:
    """The position as text, from the side to move's point of view, with coordinates."""
    board = chess.Board(fen)
    rows = str(board).splitlines()
    ranks = "87654321"
    lines = [f"{ranks[i]}  {row}" for i, row in enumerate(rows)]
    files = "   a b c d e f g h"
    if board.turn == chess.BLACK:
        lines = [f"{line[0]}  {line[3:][::-1]}" for line in reversed(lines)]
        files = "   h g f e d c b a"
    return "\n".join([*lines, files])


def _parse(board: chess.Board, text: str) -> str | None:
    """A move typed as SAN (Nf3) or UCI (g1f3), as UCI; None when it is neither."""
    for parse in (board.parse_san, board.parse_uci):
        try:
            return parse(text).uci()
        except ValueError:
            continue
    return None


@app.command()
def train(
    username: Annotated[str, typer.Argument(help="Whose cards: a player kibitz syncs.")],
    limit: Annotated[int, typer.Option(help="Cards to review at most.", min=1, max=500)] = 20,
) -> None:
    """Review your due cards: the positions of your own mistakes (and your games' puzzles).
    Type a move (SAN or UCI); right or wrong, the card is rescheduled (FSRS)."""
    from kibitz.runtime.bootstrap import bootstrap
    from kibitz.services import training

    settings = _settings()
    settings.demo = False

    async def main() -> tuple[int, int, int]:
        container = bootstrap(settings)
        await container.start([])
        reviewed = right = 0
        try:
            due = await training.due_cards(container.ctx, username, limit)
            console.print(f"{due['due']} cards due for {due['player']} ({due['total']} in all)")
            if not due["cards"]:
                return 0, 0, due["due"]
            await container.start_engines()
            for card in due["cards"]:
                outcome = await _review(container, card)
                if outcome is None:
                    break
                reviewed += 1
                right += outcome
            return reviewed, right, due["due"] - reviewed
        finally:
            await container.close()

    if limit < 1:
        raise _fail("limit must be at least 1")
    reviewed, right, left = _run(main)
    console.print(f"reviewed {reviewed}: {right} right, {reviewed - right} wrong; {left} still due")


async def _review(container: Any, card: dict[str, Any]) -> int | None:
    """One card: the board, the question, the answer checked. 1 right, 0 wrong, None at the
    end of the input."""
    from kibitz.services import training

    board = chess.Board(card["fen"])
    console.print()
    console.print(text_board(card["fen"]), highlight=False)
    side = card["turn"]
    if card["kind"] == "mistake":
        played = card["played"]["san"]
        console.print(
            f"{side} to move (game {card['game']['id']}, move {(card['game']['ply'] + 1) // 2}):"
            f" you played {played} here, a {card['judgment'].lower()}. A better move?"
        )
    else:
        console.print(f"{side} to move: a puzzle from game {card['game']['id']}. The best move?")
    while True:
        console.print("> ", end="")
        line = sys.stdin.readline()
        if not line:
            return None
        uci = _parse(board, line.strip())
        if uci is not None:
            break
        console.print(f"{line.strip()!r} is not a legal move here; try again (e.g. Nf3 or g1f3)")
    result = await training.answer(container.ctx, card["id"], uci)
    due = datetime.fromtimestamp(result["due"], UTC).strftime("%Y-%m-%d %H:%M UTC")
    best = result["best"]["san"] if result["best"] else "?"
    verdict = "right" if result["correct"] else f"wrong: {best} was the move"
    console.print(f"{result['answer']['san']}: {verdict}. Next review {due}.")
    return 1 if result["correct"] else 0
