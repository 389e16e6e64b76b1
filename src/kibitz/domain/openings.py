"""Names of the common openings, recognised by position (so transpositions count too).

A short list written for kibitz's commentary from general chess knowledge (names and their
defining moves, as any opening manual gives them); not an exhaustive ECO classification.
"""

from __future__ import annotations

from functools import cache

import chess

OPENINGS: tuple[tuple[str, str], ...] = (
    ("King's Pawn Game", "e4 e5"),
    ("Ruy Lopez", "e4 e5 Nf3 Nc6 Bb5"),
    ("Ruy Lopez: Berlin Defense", "e4 e5 Nf3 Nc6 Bb5 Nf6"),
    ("Ruy Lopez: Morphy Defense", "e4 e5 Nf3 Nc6 Bb5 a6"),
    ("Italian Game", "e4 e5 Nf3 Nc6 Bc4"),
    ("Italian Game: Giuoco Piano", "e4 e5 Nf3 Nc6 Bc4 Bc5"),
    ("Italian Game: Evans Gambit", "e4 e5 Nf3 Nc6 Bc4 Bc5 b4"),
    ("Italian Game: Two Knights Defense", "e4 e5 Nf3 Nc6 Bc4 Nf6"),
    ("Scotch Game", "e4 e5 Nf3 Nc6 d4"),
    ("Four Knights Game", "e4 e5 Nf3 Nc6 Nc3 Nf6"),
    ("Ponziani Opening", "e4 e5 Nf3 Nc6 c3"),
    ("Petrov's Defense", "e4 e5 Nf3 Nf6"),
    ("Philidor Defense", "e4 e5 Nf3 d6"),
    ("Latvian Gambit", "e4 e5 Nf3 f5"),
    ("Elephant Gambit", "e4 e5 Nf3 d5"),
    ("King's Gambit", "e4 e5 f4"),
    ("King's Gambit Accepted", "e4 e5 f4 exf4"),
    ("Vienna Game", "e4 e5 Nc3"),
    ("Bishop's Opening", "e4 e5 Bc4"),
    ("Center Game", "e4 e5 d4 exd4"),
    ("Danish Gambit", "e4 e5 d4 exd4 c3"),
    ("Sicilian Defense", "e4 c5"),
    ("Sicilian Defense: Alapin Variation", "e4 c5 c3"),
    ("Sicilian Defense: Closed", "e4 c5 Nc3"),
    ("Sicilian Defense: Smith-Morra Gambit", "e4 c5 d4 cxd4 c3"),
    ("Sicilian Defense: Open", "e4 c5 Nf3 d6 d4 cxd4 Nxd4"),
    ("Sicilian Defense: Najdorf Variation", "e4 c5 Nf3 d6 d4 cxd4 Nxd4 Nf6 Nc3 a6"),
    ("Sicilian Defense: Dragon Variation", "e4 c5 Nf3 d6 d4 cxd4 Nxd4 Nf6 Nc3 g6"),
    ("French Defense", "e4 e6"),
    ("French Defense: Advance Variation", "e4 e6 d4 d5 e5"),
    ("French Defense: Winawer Variation", "e4 e6 d4 d5 Nc3 Bb4"),
    ("French Defense: Exchange Variation", "e4 e6 d4 d5 exd5 exd5"),
    ("Caro-Kann Defense", "e4 c6"),
    ("Caro-Kann Defense: Advance Variation", "e4 c6 d4 d5 e5"),
    ("Scandinavian Defense", "e4 d5"),
    ("Alekhine Defense", "e4 Nf6"),
    ("Pirc Defense", "e4 d6 d4 Nf6 Nc3 g6"),
    ("Modern Defense", "e4 g6"),
    ("Owen Defense", "e4 b6"),
    ("Nimzowitsch Defense", "e4 Nc6"),
    ("Queen's Pawn Game", "d4 d5"),
    ("Queen's Gambit", "d4 d5 c4"),
    ("Queen's Gambit Declined", "d4 d5 c4 e6"),
    ("Queen's Gambit Accepted", "d4 d5 c4 dxc4"),
    ("Slav Defense", "d4 d5 c4 c6"),
    ("London System", "d4 d5 Bf4"),
    ("London System", "d4 Nf6 Bf4"),
    ("Colle System", "d4 d5 Nf3 Nf6 e3"),
    ("Indian Defense", "d4 Nf6"),
    ("Trompowsky Attack", "d4 Nf6 Bg5"),
    ("King's Indian Defense", "d4 Nf6 c4 g6 Nc3 Bg7"),
    ("Grünfeld Defense", "d4 Nf6 c4 g6 Nc3 d5"),
    ("Nimzo-Indian Defense", "d4 Nf6 c4 e6 Nc3 Bb4"),
    ("Queen's Indian Defense", "d4 Nf6 c4 e6 Nf3 b6"),
    ("Bogo-Indian Defense", "d4 Nf6 c4 e6 Nf3 Bb4"),
    ("Catalan Opening", "d4 Nf6 c4 e6 g3"),
    ("Benoni Defense", "d4 Nf6 c4 c5"),
    ("Benko Gambit", "d4 Nf6 c4 c5 d5 b5"),
    ("Budapest Gambit", "d4 Nf6 c4 e5"),
    ("Dutch Defense", "d4 f5"),
    ("Englund Gambit", "d4 e5"),
    ("English Opening", "c4"),
    ("English Opening: Reversed Sicilian", "c4 e5"),
    ("Réti Opening", "Nf3 d5 c4"),
    ("Zukertort Opening", "Nf3"),
    ("Bird Opening", "f4"),
    ("Polish Opening", "b4"),
    ("Nimzo-Larsen Attack", "b3"),
)


Key = tuple[int, int, int, int, int, int, int, bool, int]
OPENING_DEPTH = max(len(line.split()) for _, line in OPENINGS)  # no named position lies deeper


def _key(board: chess.Board) -> Key:
    """The position without move counters or en-passant noise: pieces, side, castling. Read
    from the bitboards (a FEN string costs a look at every square: at import, that was half
    the time of reading a short game)."""
    return (
        board.pawns,
        board.knights,
        board.bishops,
        board.rooks,
        board.queens,
        board.kings,
        board.occupied_co[chess.WHITE],
        board.turn,
        board.clean_castling_rights(),
    )


@cache
def _table() -> dict[Key, str]:
    table: dict[Key, str] = {}
    for name, line in OPENINGS:
        board = chess.Board()
        for san in line.split():
            board.push_san(san)
        table.setdefault(_key(board), name)
    return table


def opening_at(board: chess.Board) -> str | None:
    """The opening whose defining position `board` is, or None."""
    return _table().get(_key(board))
