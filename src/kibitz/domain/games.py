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

from kibitz.domain.errors import InvalidPgn
from kibitz.domain.openings import OPENING_DEPTH, opening_at
from kibitz.domain.players import CHESSCOM_SUFFIX

logging.getLogger("chess.pgn").setLevel(logging.CRITICAL)  # we report errors ourselves

# A Lichess game URL: lichess.org/<8 characters>, then the end, "/", "#" or "?" (so
# "lichess.org/broadcast/…" or "lichess.org/study/…" is never read as a game id).
LICHESS_GAME_URL = re.compile(r"lichess\.org/([A-Za-z0-9]{8})(?=$|[/#?])")
# Broadcast games and study chapters carry their id as the URL's last segment.
LICHESS_CHAPTER_URL = re.compile(
    r"lichess\.org/(?:broadcast|study)/(?:[^/\s]+/)*([A-Za-z0-9]{8})/?(?=$|[#?])"
)
GAME_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
MAX_PLIES = 2000  # longer than any game played; bounds the work a single upload can cause
MAX_RATING = 4000
MAX_CLOCK_SECONDS = 10 * 24 * 3600
MAX_NAME = 64
MIN_TIME_MS, MAX_TIME_MS = -62_135_596_800_000, 253_402_300_799_999  # years 1 to 9999
# The variants kibitz analyses: standard chess, from the initial position or a set-up one.
STANDARD_VARIANTS = {"standard", "from position", "fromposition"}


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
        return self._player_id(self.white_name)

    @property
    def black_id(self) -> str | None:
        return self._player_id(self.black_name)

    def _player_id(self, name: str | None) -> str | None:
        """Players are per site: a chess.com name is another player than the same Lichess one
        (`domain.players.player_id`)."""
        if not name:
            return None
        return name.lower() + (CHESSCOM_SUFFIX if self.source == "chesscom" else "")

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


def check_record(record: GameRecord) -> GameRecord:
    """`record` when every value fits what kibitz stores; raises InvalidPgn naming the value.

    Everything a store column or the analysis cannot take is refused here, by reason, so a game
    never fails later in the store and leaves its import waiting."""
    if not GAME_ID.fullmatch(record.id):
        raise InvalidPgn(f"game id {record.id[:40]!r} is not a valid id")
    if not record.moves_uci:
        raise InvalidPgn("the game has no moves")
    if len(record.moves_uci) > MAX_PLIES:
        raise InvalidPgn(f"the game has {len(record.moves_uci)} plies; the limit is {MAX_PLIES}")
    for side, name in (("White", record.white_name), ("Black", record.black_name)):
        if name is not None and len(name) > MAX_NAME:
            raise InvalidPgn(f"the {side} name is over {MAX_NAME} characters")
    for label, rating in (("WhiteElo", record.white_rating), ("BlackElo", record.black_rating)):
        if rating is not None and not (0 <= rating <= MAX_RATING):
            raise InvalidPgn(f"{label} {rating} is out of range (0 to {MAX_RATING})")
    for label, seconds in (("clock", record.clock_initial), ("increment", record.clock_increment)):
        if seconds is not None and not (0 <= seconds <= MAX_CLOCK_SECONDS):
            raise InvalidPgn(f"the time control's {label} {seconds} s is out of range")
    if record.clocks_cs is not None and not all(
        isinstance(c, int) and 0 <= c <= MAX_CLOCK_SECONDS * 100 for c in record.clocks_cs
    ):
        raise InvalidPgn("the clocks are not all times in range")
    limits = {
        "status": (record.status, 32),
        "ECO": (record.opening_eco, 8),
        "opening": (record.opening_name, 200),
        "speed": (record.speed, 32),
        "perf": (record.perf, 32),
        "initial FEN": (record.initial_fen, 100),
    }
    for label, (value, limit) in limits.items():
        if value is not None and len(value) > limit:
            raise InvalidPgn(f"the {label} is over {limit} characters")
    texts = [record.white_name, record.black_name, record.raw_json, record.pgn]
    texts += [v for v, _ in limits.values()]
    texts += [t for kv in record.headers.items() for t in kv]
    if any(t is not None and "\x00" in t for t in texts):
        raise InvalidPgn("the game contains a NUL byte")
    if record.played_at_ms is not None and not (MIN_TIME_MS <= record.played_at_ms <= MAX_TIME_MS):
        raise InvalidPgn("the game's date is out of range")
    return record


def starting_board(initial_fen: str | None) -> chess.Board:
    """The board a game starts from; raises InvalidPgn for a FEN that is not a legal position."""
    if not initial_fen:
        return chess.Board()  # the initial position: legal by definition
    try:
        board = chess.Board(initial_fen)
    except ValueError as exc:
        raise InvalidPgn(f"invalid starting position: {exc}") from None
    # An impossible check can come from a legal set-up position; anything else cannot be played.
    problems = board.status() & ~chess.STATUS_IMPOSSIBLE_CHECK
    if problems:
        names = [
            flag.name.lower().replace("_", " ")
            for flag in chess.Status
            if flag and flag in chess.Status(problems) and flag.name
        ]
        raise InvalidPgn(f"the starting position is not legal: {', '.join(names)}")
    return board


def replay(
    moves: list[str], initial_fen: str | None, *, notation: str
) -> tuple[list[str], list[str]]:
    """UCI and SAN of `moves` (given in `notation` "san" or "uci") played from `initial_fen`.

    Raises InvalidPgn naming the first illegal move and its ply.
    """
    if len(moves) > MAX_PLIES:
        raise InvalidPgn(f"the game has {len(moves)} plies; the limit is {MAX_PLIES}")
    board = starting_board(initial_fen)
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
    if not GAME_ID.fullmatch(game_id):
        raise InvalidPgn(f"game id {game_id[:40]!r} is not a valid id")
    variant = obj.get("variant", "standard")
    if variant not in ("standard", "fromPosition"):
        raise InvalidPgn(f"variant {str(variant)[:40]!r} is not supported")
    _expect_types(obj)
    initial_fen = obj.get("initialFen")
    sans = str(obj.get("moves", "")).split()
    ucis, sans = replay(sans, initial_fen, notation="san")
    players = obj.get("players") or {}
    white, black = players.get("white") or {}, players.get("black") or {}
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
    return check_record(
        GameRecord(
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
    )


# The fields of a Lichess game object kibitz reads, with the JSON types Lichess sends.
_LICHESS_TYPES: dict[str, type] = {
    "rated": bool,
    "speed": str,
    "perf": str,
    "status": str,
    "winner": str,
    "initialFen": str,
    "moves": str,
    "createdAt": int,
    "players": dict,
    "players.white": dict,
    "players.black": dict,
    "players.white.user": dict,
    "players.black.user": dict,
    "players.white.rating": int,
    "players.black.rating": int,
    "clock": dict,
    "clock.initial": int,
    "clock.increment": int,
    "opening": dict,
    "opening.ply": int,
    "clocks": list,
    "analysis": list,
    "pgn": str,
}


def _expect_types(obj: dict[str, Any]) -> None:
    """Raise InvalidPgn naming the first field whose JSON type is not the one Lichess sends."""
    for path, expected in _LICHESS_TYPES.items():
        value: Any = obj
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        # JSON's true and false are Python ints too: an int field must not take them.
        wrong_bool = isinstance(value, bool) and expected is not bool
        if value is not None and (not isinstance(value, expected) or wrong_bool):
            raise InvalidPgn(f"field {path!r} is not a JSON {expected.__name__}")


def _player_name(side: dict[str, Any]) -> str | None:
    user = side.get("user")
    if isinstance(user, dict) and user.get("name"):
        return str(user["name"])
    if side.get("aiLevel") is not None:
        return f"Stockfish level {side['aiLevel']}"
    return None


@dataclass(frozen=True)
class PgnEntry:
    """One game of a PGN file: its text (when it is readable) or why it was rejected."""

    index: int
    pgn: str | None
    error: str | None


def split_pgn(text: str) -> list[PgnEntry]:
    """Every game of a PGN file, in order, with index from 1, as its own text.

    Only the headers are parsed here (python-chess skips the movetext), so a large file splits
    quickly; each game is validated when it is stored, and rejected there by index. A piece that
    cannot even be read carries its reason."""
    stream = io.StringIO(text)
    entries: list[PgnEntry] = []
    while True:
        start = stream.tell()
        try:
            headers = chess.pgn.read_headers(stream)
        except Exception as exc:  # python-chess raises more than ValueError on garbage
            entries.append(PgnEntry(len(entries) + 1, None, f"unreadable PGN: {exc!r}"[:300]))
            if stream.tell() == start:
                break
            continue
        if headers is None:
            break
        entries.append(PgnEntry(len(entries) + 1, text[start : stream.tell()].strip() + "\n", None))
    return entries


def _describe(error: Exception) -> str:
    text = str(error)
    if "illegal san" in text or "illegal" in text.lower():
        return f"illegal move: {text}"
    return f"broken PGN: {text}"


class _MainlineReader(chess.pgn.BaseVisitor["_MainlineReader"]):
    """Reads one PGN game's headers and main line in python-chess's single pass: each move's
    SAN (as python-chess writes it, whatever the file wrote), its UCI, the comments after it
    and, for a game from the initial position without an Opening tag, the last named opening
    it passes through (as the commentary names it). Variations are read (an illegal move in
    one rejects the game, as before) but not kept. Building python-chess's game tree and
    replaying its main line on a second board cost 10-30 % more (short to long games)."""

    def begin_game(self) -> None:
        self.headers = chess.pgn.Headers()  # the Seven Tag Roster's defaults, as Game() has
        self.errors: list[Exception] = []
        self.sans: list[str] = []
        self.ucis: list[str] = []
        self.comments: list[str] = []
        self.name_it: bool | None = None  # decided on the first position
        self.named: tuple[str, int] | None = None
        self.depth = 0  # 0 on the main line, else how deep in variations

    def begin_headers(self) -> chess.pgn.Headers:
        return self.headers

    def visit_header(self, tagname: str, tagvalue: str) -> None:
        self.headers[tagname] = tagvalue

    def visit_board(self, board: chess.Board) -> None:
        if self.depth:
            return
        plies = len(self.ucis)
        if self.name_it is None:  # the position the game starts from
            self.name_it = not self.headers.get("Opening") and board.fen() == chess.STARTING_FEN
        elif self.name_it and 0 < plies <= OPENING_DEPTH and len(board.move_stack) == plies:
            name = opening_at(board)
            self.named = (name, plies) if name is not None else self.named

    def begin_variation(self) -> None:
        self.depth += 1

    def end_variation(self) -> None:
        self.depth -= 1

    def visit_move(self, board: chess.Board, move: chess.Move) -> None:
        if self.depth:
            return
        if len(self.ucis) >= MAX_PLIES:
            raise InvalidPgn(f"the game has more than {MAX_PLIES} plies")
        self.sans.append(board.san(move))
        self.ucis.append(move.uci())
        self.comments.append("")

    def visit_comment(self, comment: str) -> None:
        if self.comments and not self.depth:  # a main-line move's (before any: the game's)
            self.comments[-1] = f"{self.comments[-1]} {comment}" if self.comments[-1] else comment

    def visit_result(self, result: str) -> None:
        if self.headers.get("Result", "*") == "*":
            self.headers["Result"] = result

    def handle_error(self, error: Exception) -> None:
        self.errors.append(error)

    def result(self) -> _MainlineReader:
        return self


def _read_pgn(text: str) -> _MainlineReader:
    """The first game of `text`; raises InvalidPgn for anything python-chess cannot read."""
    try:
        game = chess.pgn.read_game(io.StringIO(text), Visitor=_MainlineReader)
    except InvalidPgn:
        raise
    except Exception as exc:  # IndexError, AttributeError… on malformed movetext
        raise InvalidPgn(f"unreadable PGN: {type(exc).__name__}: {exc}"[:300]) from None
    if game is None:
        raise InvalidPgn("no game in the PGN text")
    if game.errors:
        raise InvalidPgn(_describe(game.errors[0]))
    variant = game.headers.get("Variant", "Standard").strip().lower()
    if variant not in STANDARD_VARIANTS or game.headers.variant() is not chess.Board:
        raise InvalidPgn(
            f"variant {game.headers.get('Variant', '')[:40]!r} is not supported "
            "(kibitz analyses standard chess)"
        )
    if game.headers.is_chess960():
        raise InvalidPgn("Chess960 is not supported (kibitz analyses standard chess)")
    return game


def _pgn_eval(comment: str) -> dict[str, Any] | None:
    """A `[%eval …]` comment's score, White's point of view (as PGN writes it), as python-chess
    reads it (`GameNode.eval`, whose regex this is)."""
    found = chess.pgn.EVAL_REGEX.search(comment)
    if not found:
        return None
    if found.group("mate"):
        return {"mate": int(found.group("mate"))}
    return {"cp": round(float(found.group("cp")) * 100)}


def _pgn_clock(comment: str) -> float | None:
    """A `[%clk h:mm:ss]` comment's seconds (`GameNode.clock`, whose regex this is)."""
    found = chess.pgn.CLOCK_REGEX.search(comment)
    if found is None:
        return None
    hours, minutes = int(found.group("hours")), int(found.group("minutes"))
    return hours * 3600 + minutes * 60 + float(found.group("seconds"))


def pgn_game_id(headers: dict[str, str], moves_uci: list[str]) -> str:
    """The game's id: Lichess's game id from a game URL (Site or GameURL), a broadcast game's
    or study chapter's id (the last segment of GameURL, ChapterURL or Site), else a hash of
    the headers and moves."""
    urls = [headers.get(name, "") for name in ("GameURL", "ChapterURL", "Site")]
    for pattern in (LICHESS_GAME_URL, LICHESS_CHAPTER_URL):
        for url in urls:
            found = pattern.search(url)
            if found:
                return found.group(1)
    return content_id(headers, moves_uci)


def content_id(headers: dict[str, str], moves_uci: list[str]) -> str:
    """An id derived from the whole game: the same game always gets it, another game never."""
    digest = hashlib.sha256(
        (json.dumps(sorted(headers.items())) + " ".join(moves_uci)).encode()
    ).hexdigest()
    return "p" + digest[:15]


def game_from_pgn(text: str) -> GameRecord:
    """A game from the text of one PGN game; keeps `[%eval]` and `[%clk]` comments.

    Linear in the game's length. Raises InvalidPgn with the reason.
    """
    if "\x00" in text:
        raise InvalidPgn("the game contains a NUL byte")
    game = _read_pgn(text)
    headers = dict(game.headers)
    fen = headers.get("FEN") if headers.get("SetUp", "1") != "0" else None
    board = starting_board(fen) if fen else game.headers.board()
    start = board.fen() if "FEN" in headers else chess.STARTING_FEN
    initial_fen = start if start != chess.STARTING_FEN else None
    ucis, sans, named = game.ucis, game.sans, game.named
    clocks: list[int] = []
    evals: list[dict[str, Any] | None] = []
    for comment in game.comments:
        clk = _pgn_clock(comment) if comment else None
        if clk is not None:
            clocks.append(round(clk * 100))
        evals.append(_pgn_eval(comment) if comment else None)
    time_control = headers.get("TimeControl", "")
    initial, increment = None, None
    if "+" in time_control:
        a, b = time_control.split("+", 1)
        if a.isdigit() and b.isdigit():
            initial, increment = int(a), int(b)
    elif time_control.isdigit():  # sudden death (PGN's "180"; chess.com writes it so)
        initial, increment = int(time_control), 0
    result = headers.get("Result", "*")
    return check_record(
        GameRecord(
            id=pgn_game_id(headers, ucis),
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
            opening_name=headers.get("Opening") or (named[0] if named else None),
            opening_ply=named[1] if named else None,
            clock_initial=initial,
            clock_increment=increment,
            clocks_cs=clocks if clocks and len(clocks) == len(ucis) else None,
            pgn_evals=evals if any(e is not None for e in evals) else None,
            headers=headers,
            pgn=text,
            played_at_ms=_pgn_time_ms(headers),
        )
    )


# chess.com's game URLs: https://www.chess.com/game/live/<number> (or /daily/, /game/<n>).
CHESSCOM_GAME_URL = re.compile(r"chess\.com/(?:game/)?(live|daily)?/?(?:game/)?(\d+)")
CHESSCOM_RULES = {"chess": "standard"}


def game_from_chesscom(obj: dict[str, Any], line: str | None = None) -> GameRecord:
    """A game of chess.com's published API (a monthly archive's `games[]` item: `url`, `pgn`,
    `rules`, `rated`, `time_class`, `end_time`, `white`/`black` {`username`, `rating`,
    `result`}); its moves, clocks and tags come from its PGN. Raises InvalidPgn."""
    url, pgn, rules = obj.get("url"), obj.get("pgn"), obj.get("rules", "chess")
    if not isinstance(url, str) or not isinstance(pgn, str):
        raise InvalidPgn("a chess.com game needs its url and pgn")
    if rules not in CHESSCOM_RULES:
        raise InvalidPgn(f"{str(rules)[:20]} games are not analysed (standard chess only)")
    found = CHESSCOM_GAME_URL.search(url)
    if found is None:
        raise InvalidPgn(f"{url[:80]!r} is not a chess.com game URL")
    kind, number = found.group(1) or "live", found.group(2)
    record = game_from_pgn(pgn)
    sides = [obj.get("white"), obj.get("black")]
    names = [s.get("username") if isinstance(s, dict) else None for s in sides]
    ratings = [s.get("rating") if isinstance(s, dict) else None for s in sides]
    end = obj.get("end_time")
    record.id = f"cc{'d' if kind == 'daily' else ''}{number}"
    record.source = "chesscom"
    record.raw_json = line
    record.white_name = names[0] if isinstance(names[0], str) else record.white_name
    record.black_name = names[1] if isinstance(names[1], str) else record.black_name
    if isinstance(ratings[0], int) and not isinstance(ratings[0], bool):
        record.white_rating = ratings[0]
    if isinstance(ratings[1], int) and not isinstance(ratings[1], bool):
        record.black_rating = ratings[1]
    record.rated = obj.get("rated") if isinstance(obj.get("rated"), bool) else None
    time_class = obj.get("time_class")
    record.speed = record.perf = time_class if isinstance(time_class, str) else None
    if isinstance(end, int) and not isinstance(end, bool):
        record.played_at_ms = end * 1000
    return check_record(record)


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


# --- a raw game as the ingest services pass it on (games.raw) ---------------------------

SITES = {"lichess": ("Lichess", game_from_lichess), "chesscom": ("chess.com", game_from_chesscom)}


def parse_raw_game(source: str, game_json: str | None, pgn: str | None) -> GameRecord:
    """The game of a games.raw message (a site's JSON game, or PGN text); raises InvalidPgn
    with the reason."""
    if source in SITES and game_json is not None:
        site, parse = SITES[source]
        try:
            game = json.loads(game_json)
        except ValueError as exc:
            raise InvalidPgn(f"{site} sent a line that is not JSON: {exc}") from None
        if not isinstance(game, dict):
            raise InvalidPgn(f"{site} sent a line that is not a game object")
        return parse(game, game_json)
    if pgn is not None:
        return game_from_pgn(pgn)
    raise InvalidPgn("raw game without Lichess JSON or PGN text")


def parse_raw_games(
    raw: list[tuple[str, str | None, str | None]],
) -> list[GameRecord | str]:
    """Each (source, site JSON line, PGN text)'s game, or the reason it is invalid. Runs in a
    worker process when the store service has one (this module's imports are all it needs):
    python-chess replay is the CPU-heavy part of ingest, and plain strings cross the process
    boundary far cheaper than models."""
    out: list[GameRecord | str] = []
    for source, lichess_json, pgn in raw:
        try:
            out.append(parse_raw_game(source, lichess_json, pgn))
        except InvalidPgn as exc:
            out.append(exc.detail)
        except Exception as exc:  # whatever a malformed game makes a parser raise
            out.append(f"unreadable game: {type(exc).__name__}: {exc}"[:300])
    return out
