"""Games as kibitz keeps them, built from Lichess's JSON export or from PGN, validated by
python-chess (every move must be legal from the starting position)."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import chess
import chess.pgn

from kibitz.errors import InvalidPgn

logging.getLogger("chess.pgn").setLevel(logging.CRITICAL)  # we report errors ourselves

LICHESS_SITE = re.compile(r"lichess\.org/(\w{8})")


@dataclass
class GameRecord:
    """A validated game, ready to be stored; `id` is its identity across re-imports."""

    id: str
    source: str
    moves_uci: list[str]
    moves_san: list[str]
    initial_fen: str | None = None
    white_name: str | None = None
    black_name: str | None = None
    white_rating: int | None = None
    black_rating: int | None = None
    result: str = "*"
    status: str | None = None
    winner: str | None = None
    rated: bool | None = None
    variant: str = "standard"
    speed: str | None = None
    perf: str | None = None
    opening_eco: str | None = None
    opening_name: str | None = None
    opening_ply: int | None = None
    clock_initial: int | None = None
    clock_increment: int | None = None
    clocks_cs: list[int] | None = None
    server_analysis: list[dict[str, Any]] | None = None
    player_analysis: dict[str, Any] | None = None
    pgn_evals: list[dict[str, Any] | None] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    raw_json: str | None = None  # the source line, verbatim, when there is one
    pgn: str | None = None
    played_at_ms: int | None = None

    @property
    def white_id(self) -> str | None:
        return self.white_name.lower() if self.white_name else None

    @property
    def black_id(self) -> str | None:
        return self.black_name.lower() if self.black_name else None

    @property
    def played_at(self) -> datetime | None:
        if self.played_at_ms is None:
            return None
        return datetime.fromtimestamp(self.played_at_ms / 1000, UTC)

    def content_hash(self) -> str:
        """Changes whenever anything kept about the game changes (so a re-import updates it):
        the hash of the source exactly as received."""
        source = self.raw_json or self.pgn
        if source is None:
            source = json.dumps([self.moves_uci, self.result, self.status, self.headers])
        return hashlib.sha256(source.encode()).hexdigest()


def replay(
    moves: list[str], initial_fen: str | None, *, notation: str
) -> tuple[list[str], list[str]]:
    """UCI and SAN of `moves` (given in `notation` "san" or "uci") played from `initial_fen`.

    Raises InvalidPgn naming the first illegal move and its ply.
    """
    board = chess.Board(initial_fen) if initial_fen else chess.Board()
    ucis: list[str] = []
    sans: list[str] = []
    for ply, token in enumerate(moves, start=1):
        try:
            move = board.parse_san(token) if notation == "san" else board.parse_uci(token)
        except ValueError as exc:
            raise InvalidPgn(f"illegal move {token!r} at ply {ply}: {exc}") from None
        # Lichess's SAN is already canonical; only UCI input needs SAN written out.
        sans.append(board.san(move) if notation == "uci" else token)
        ucis.append(move.uci())
        board.push(move)
    return ucis, sans


RESULTS = {"white": "1-0", "black": "0-1"}
DRAW_STATUSES = {"draw", "stalemate"}


def game_from_lichess(obj: dict[str, Any], line: str | None = None) -> GameRecord:
    """A game from one object of Lichess's NDJSON export (`GET /api/games/user/{username}`).

    Field names as in Lichess's API documentation and lila's GameApiV2 JSON writer.
    Raises InvalidPgn when it is not a playable standard game.
    """
    game_id = obj.get("id")
    if not isinstance(game_id, str) or not game_id:
        raise InvalidPgn("game without an id")
    variant = obj.get("variant", "standard")
    if variant not in ("standard", "fromPosition"):
        raise InvalidPgn(f"variant {variant!r} is not supported")
    initial_fen = obj.get("initialFen")
    sans = str(obj.get("moves", "")).split()
    ucis, sans = replay(sans, initial_fen, notation="san")
    players = obj.get("players", {})
    white, black = players.get("white", {}), players.get("black", {})
    status = obj.get("status")
    winner = obj.get("winner")
    result = RESULTS.get(
        winner or "",
        "1/2-1/2"
        if status in DRAW_STATUSES
        or (status in ("outoftime", "timeout", "insufficientMaterialClaim") and not winner)
        else "*",
    )
    if winner is None and status not in (None, "started", "created") and result == "*":
        result = "1/2-1/2"
    clock = obj.get("clock") or {}
    opening = obj.get("opening") or {}
    analysis = obj.get("analysis")
    player_analysis = {
        side: players[side]["analysis"]
        for side in ("white", "black")
        if isinstance(players.get(side), dict) and "analysis" in players[side]
    } or None
    return GameRecord(
        id=game_id,
        source="lichess",
        moves_uci=ucis,
        moves_san=sans,
        initial_fen=initial_fen,
        white_name=_player_name(white),
        black_name=_player_name(black),
        white_rating=white.get("rating"),
        black_rating=black.get("rating"),
        result=result,
        status=status,
        winner=winner,
        rated=obj.get("rated"),
        variant=variant,
        speed=obj.get("speed"),
        perf=obj.get("perf"),
        opening_eco=opening.get("eco"),
        opening_name=opening.get("name"),
        opening_ply=opening.get("ply"),
        clock_initial=clock.get("initial"),
        clock_increment=clock.get("increment"),
        clocks_cs=obj.get("clocks"),
        server_analysis=analysis if isinstance(analysis, list) else None,
        player_analysis=player_analysis,
        pgn=obj.get("pgn"),
        played_at_ms=obj.get("createdAt"),
        raw_json=line if line is not None else json.dumps(obj),
    )


def _player_name(side: dict[str, Any]) -> str | None:
    user = side.get("user")
    if isinstance(user, dict) and user.get("name"):
        return str(user["name"])
    if side.get("aiLevel") is not None:
        return f"Stockfish level {side['aiLevel']}"
    return None


@dataclass(frozen=True)
class PgnEntry:
    """One game of a PGN file: its text (when it is valid) or why it was rejected."""

    index: int
    pgn: str | None
    error: str | None


def split_pgn(text: str) -> list[PgnEntry]:
    """Every game of a PGN file, in order, with index from 1; a broken game carries its reason."""
    stream = io.StringIO(text)
    entries: list[PgnEntry] = []
    index = 0
    while True:
        try:
            game = chess.pgn.read_game(stream)
        except (ValueError, UnicodeDecodeError) as exc:
            index += 1
            entries.append(PgnEntry(index, None, f"unreadable PGN: {exc}"))
            continue
        if game is None:
            break
        index += 1
        if game.errors:
            entries.append(PgnEntry(index, None, _describe(game.errors[0])))
            continue
        if not any(True for _ in game.mainline_moves()) and not game.headers.get("White"):
            entries.append(PgnEntry(index, None, "no moves and no headers: not a game"))
            continue
        exporter = chess.pgn.StringExporter(headers=True, variations=False, comments=True)
        entries.append(PgnEntry(index, game.accept(exporter), None))
    return entries


def _describe(error: Exception) -> str:
    text = str(error)
    if "illegal san" in text or "illegal" in text.lower():
        return f"illegal move: {text}"
    return f"broken PGN: {text}"


def game_from_pgn(text: str) -> GameRecord:
    """A game from the text of one PGN game; keeps `[%eval]` and `[%clk]` comments.

    Raises InvalidPgn with the reason.
    """
    game = chess.pgn.read_game(io.StringIO(text))
    if game is None:
        raise InvalidPgn("no game in the PGN text")
    if game.errors:
        raise InvalidPgn(_describe(game.errors[0]))
    headers = dict(game.headers)
    board = game.board()
    initial_fen = board.fen() if board.fen() != chess.STARTING_FEN else None
    ucis: list[str] = []
    sans: list[str] = []
    clocks: list[int] = []
    evals: list[dict[str, Any] | None] = []
    for node in game.mainline():
        sans.append(node.parent.board().san(node.move) if node.parent else "")
        ucis.append(node.move.uci())
        clk = node.clock()
        if clk is not None:
            clocks.append(round(clk * 100))
        score = node.eval()
        if score is None:
            evals.append(None)
        else:
            white = score.white()
            evals.append({"mate": white.mate()} if white.is_mate() else {"cp": white.score()})
    site_match = LICHESS_SITE.search(headers.get("Site", ""))
    game_id = (
        site_match.group(1)
        if site_match
        else "p"
        + hashlib.sha256(
            (json.dumps(sorted(headers.items())) + " ".join(ucis)).encode()
        ).hexdigest()[:15]
    )
    time_control = headers.get("TimeControl", "")
    initial, increment = None, None
    if "+" in time_control:
        a, b = time_control.split("+", 1)
        if a.isdigit() and b.isdigit():
            initial, increment = int(a), int(b)
    result = headers.get("Result", "*")
    return GameRecord(
        id=game_id,
        source="pgn",
        moves_uci=ucis,
        moves_san=sans,
        initial_fen=initial_fen,
        white_name=headers.get("White") if headers.get("White") not in (None, "?") else None,
        black_name=headers.get("Black") if headers.get("Black") not in (None, "?") else None,
        white_rating=_int(headers.get("WhiteElo")),
        black_rating=_int(headers.get("BlackElo")),
        result=result if result in ("1-0", "0-1", "1/2-1/2") else "*",
        status=headers.get("Termination"),
        winner={"1-0": "white", "0-1": "black"}.get(result),
        opening_eco=headers.get("ECO"),
        opening_name=headers.get("Opening"),
        clock_initial=initial,
        clock_increment=increment,
        clocks_cs=clocks if clocks and len(clocks) == len(ucis) else None,
        pgn_evals=evals if any(e is not None for e in evals) else None,
        headers=headers,
        pgn=text,
        played_at_ms=_pgn_time_ms(headers),
    )


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _pgn_time_ms(headers: dict[str, str]) -> int | None:
    date = headers.get("UTCDate") or headers.get("Date")
    if not date or "?" in date:
        return None
    moment = f"{date} {headers.get('UTCTime', '00:00:00')}"
    try:
        parsed = datetime.strptime(moment, "%Y.%m.%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(parsed.timestamp() * 1000)
