"""A local fake of the Lichess HTTP API for tests, driven through KIBITZ_LICHESS_URL.

Shapes follow Lichess's public API documentation (lichess.org/api, "Export games of a user",
`GET /api/games/user/{username}` with `Accept: application/x-ndjson`) and the JSON written by
lila's GameApiV2: `id, rated, variant, speed, perf, createdAt, lastMoveAt, status, players
{white,black: {user {name,id}, rating, ratingDiff, analysis?}}, winner, opening {eco,name,ply},
moves (SAN, space separated), clocks (centiseconds), clock {initial,increment,totalTime},
analysis? [{eval|mate, best?, variation?, judgment? {name, comment}}]`. Unknown users get 404,
a queued status (e.g. 429) is answered on demand, and a stream can be cut mid-way.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import chess
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.server import ThreadedServer

BASE_TIME_MS = 1_700_000_000_000
OPENINGS = [
    ("C50", "Italian Game", 5),
    ("B01", "Scandinavian Defense", 2),
    ("D02", "Queen's Pawn Game", 3),
]


def random_game(
    rng: random.Random,
    game_id: str,
    white: str,
    black: str,
    created_ms: int,
    plies: tuple[int, int] = (10, 60),
) -> dict[str, Any]:
    """A legal game (python-chess picks random legal moves) in Lichess's export shape."""
    board = chess.Board()
    sans: list[str] = []
    for _ in range(rng.randint(*plies)):
        moves = list(board.legal_moves)
        if not moves:
            break
        move = rng.choice(moves)
        sans.append(board.san(move))
        board.push(move)
    clocks, remaining = [], [18000, 18000]
    for ply in range(len(sans)):
        remaining[ply % 2] = max(0, remaining[ply % 2] - rng.randint(50, 900) + 200)
        clocks.append(remaining[ply % 2])
    winner = rng.choice(["white", "black", None])
    eco, name, ply = rng.choice(OPENINGS)
    return {
        "id": game_id,
        "rated": True,
        "variant": "standard",
        "speed": "blitz",
        "perf": "blitz",
        "createdAt": created_ms,
        "lastMoveAt": created_ms + 300_000,
        "status": "resign" if winner else "draw",
        "source": "pool",
        "players": {
            "white": {
                "user": {"name": white, "id": white.lower()},
                "rating": 1500 + rng.randint(0, 500),
                "ratingDiff": 5,
            },
            "black": {
                "user": {"name": black, "id": black.lower()},
                "rating": 1500 + rng.randint(0, 500),
                "ratingDiff": -5,
            },
        },
        **({"winner": winner} if winner else {}),
        "opening": {"eco": eco, "name": name, "ply": ply},
        "moves": " ".join(sans),
        "clocks": clocks,
        "clock": {"initial": 180, "increment": 2, "totalTime": 260},
    }


STATUS_IDS = {"started": 20, "mate": 30, "resign": 31, "stalemate": 32, "draw": 34}
STATUS_IDS["outoftime"] = 35


@dataclass
class LiveGame:
    """A game being played on the fake server: ply k is played at `started + k * pace`."""

    id: str
    white: str
    black: str
    sans: list[str]
    pace: float
    status: str = "resign"  # how it ends
    winner: str | None = "white"
    initial_seconds: int = 180
    start_in: float = 0.0  # the game starts this long after kibitz first asks about it
    started: float | None = None
    drop_at_ply: int | None = None  # cut the stream once, just before this ply is sent
    # Lichess delays the stream of an ongoing game "by a few seconds ranging from 3 to 60
    # depending on the time control, as to prevent cheat bots from using this API" (its API
    # documentation of /api/stream/game/{id}): a ply is sent this long after it is played.
    delay: float = 0.0

    def __post_init__(self) -> None:
        board = chess.Board()
        self.ucis: list[str] = []
        self.fens = [board.fen()]
        for san in self.sans:
            move = board.parse_san(san)
            self.ucis.append(move.uci())
            board.push(move)
            self.fens.append(board.fen())
        # Clocks after each ply: each side spends 1-8 s a move (seeded by the game id).
        rng = random.Random(self.id)
        left = [self.initial_seconds, self.initial_seconds]
        self.clocks: list[tuple[int, int]] = [(left[0], left[1])]
        for ply in range(len(self.sans)):
            left[ply % 2] = max(0, left[ply % 2] - rng.randint(1, 8) + 2)
            self.clocks.append((left[0], left[1]))

    def begin(self) -> float:
        """When the game starts: fixed by the first request that concerns it."""
        if self.started is None:
            self.started = time.monotonic() + self.start_in
        return self.started

    def ply_now(self, behind: float = 0.0) -> int:
        """The plies played by now (`behind` seconds ago); -1 before the game starts."""
        elapsed = time.monotonic() - behind - self.begin()
        return max(0, min(len(self.sans), int(elapsed / self.pace))) if elapsed >= 0 else -1

    def finished(self, behind: float = 0.0) -> bool:
        return time.monotonic() - behind >= self.begin() + len(self.sans) * self.pace

    def players(self) -> dict[str, Any]:
        return {
            color: {"user": {"name": name, "id": name.lower()}, "rating": 1800}
            for color, name in (("white", self.white), ("black", self.black))
        }

    def game_json(self, ply: int, ended: bool) -> dict[str, Any]:
        """The game as lila's JsonView writes it (`baseWithChessDenorm` plus players)."""
        status = self.status if ended else "started"
        out: dict[str, Any] = {
            "id": self.id,
            "variant": {"key": "standard", "name": "Standard", "short": "Std"},
            "speed": "blitz",
            "perf": "blitz",
            "rated": True,
            "fen": self.fens[ply],
            "turns": ply,
            "source": "pool",
            "status": {"id": STATUS_IDS[status], "name": status},
            "createdAt": BASE_TIME_MS,
            "player": "white" if ply % 2 == 0 else "black",
            "players": self.players(),
        }
        if ply:
            out["lastMove"] = self.ucis[ply - 1]
        if ended and self.winner:
            out["winner"] = self.winner
        return out

    def position_json(self, ply: int) -> dict[str, Any]:
        """One position line of lila's ApiMoveStream: full FEN, last move, clocks (seconds)."""
        line: dict[str, Any] = {"fen": self.fens[ply]}
        if ply:
            line["lm"] = self.ucis[ply - 1]
        line["wc"], line["bc"] = self.clocks[ply]
        return line


@dataclass
class FakeLichess:
    users: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    queued_statuses: list[int] = field(default_factory=list)
    drop_after: int | None = None  # cut the next stream after this many games
    # user → {position: line}: sent verbatim before the game at that position (broken lines)
    extra_lines: dict[str, dict[int, str]] = field(default_factory=dict)
    line_delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    live: dict[str, list[LiveGame]] = field(default_factory=dict)  # user → games in order
    active: int = 0
    max_active: int = 0
    http: ThreadedServer = field(default_factory=ThreadedServer)

    @property
    def url(self) -> str:
        return self.http.url

    @property
    def port(self) -> int:
        return self.http.port

    def add_user(
        self, name: str, count: int, seed: int = 7, plies: tuple[int, int] = (10, 60)
    ) -> list[dict[str, Any]]:
        rng = random.Random(seed)
        games = [
            random_game(
                rng,
                f"{seed % 100:02d}{i:06d}",
                name if i % 2 == 0 else f"opp{i % 13}",
                f"opp{i % 13}" if i % 2 == 0 else name,
                BASE_TIME_MS + i * 60_000,
                plies,
            )
            for i in range(count)
        ]
        self.users[name.lower()] = games
        return games

    async def export(self, request: Request) -> Response:
        username = request.path_params["username"]
        params = dict(request.query_params)
        self.requests.append(
            {
                "path": request.url.path,
                "params": params,
                "auth": request.headers.get("authorization"),
            }
        )
        if self.queued_statuses:
            status = self.queued_statuses.pop(0)
            return JSONResponse(
                {"error": "Too many requests" if status == 429 else "error"}, status
            )
        games = self.users.get(username.lower())
        if games is None:
            return JSONResponse({"error": "Not found"}, 404)
        since = int(params.get("since", 0))
        until = int(params["until"]) if "until" in params else None
        chosen = [
            g
            for g in games
            if g["createdAt"] >= since and (until is None or g["createdAt"] <= until)
        ]
        if params.get("sort") != "dateAsc":
            chosen = list(reversed(chosen))  # Lichess's default: most recent first
        if "max" in params:
            chosen = chosen[: int(params["max"])]
        drop_after, self.drop_after = self.drop_after, None
        self.active += 1
        self.max_active = max(self.max_active, self.active)

        async def lines() -> AsyncIterator[bytes]:
            try:
                extra = self.extra_lines.get(username.lower(), {})
                for sent, game in enumerate(chosen):
                    if drop_after is not None and sent == drop_after:
                        raise ConnectionResetError("fake Lichess cut the stream")
                    if self.line_delay:
                        await asyncio.sleep(self.line_delay)
                    if sent in extra:
                        yield (extra[sent] + "\n").encode()
                    yield (json.dumps(game) + "\n").encode()
            finally:
                self.active -= 1

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    def add_live_game(
        self,
        username: str,
        sans: list[str],
        *,
        opponent: str = "rival",
        pace: float = 0.05,
        start_in: float = 0.0,
        drop_at_ply: int | None = None,
        delay: float = 0.0,
        game_id: str | None = None,
        status: str = "resign",
        winner: str | None = "white",
    ) -> LiveGame:
        """A game `username` (White) plays, one ply every `pace` seconds, from `start_in`
        seconds after the first request about it (so a test's set-up time does not count)."""
        games = self.live.setdefault(username.lower(), [])
        game = LiveGame(
            id=game_id or f"live{len(games):04d}",
            white=username,
            black=opponent,
            sans=sans,
            pace=pace,
            status=status,
            winner=winner,
            start_in=start_in,
            drop_at_ply=drop_at_ply,
            delay=delay,
        )
        games.append(game)
        return game

    def _live_game(self, game_id: str) -> LiveGame | None:
        return next((g for gs in self.live.values() for g in gs if g.id == game_id), None)

    async def users_status(self, request: Request) -> Response:
        ids = [i for i in request.query_params.get("ids", "").split(",") if i]
        self.requests.append({"path": request.url.path, "params": dict(request.query_params)})
        if self.queued_statuses:
            return JSONResponse({"error": "Too many requests"}, self.queued_statuses.pop(0))
        out = []
        for user in ids:
            status: dict[str, Any] = {"id": user.lower(), "name": user, "online": True}
            playing = [
                g for g in self.live.get(user.lower(), []) if g.ply_now() >= 0 and not g.finished()
            ]
            if playing:
                status["playing"] = True
                if request.query_params.get("withGameIds") == "true":
                    status["playingId"] = playing[0].id
            out.append(status)
        return JSONResponse(out)

    async def stream_game(self, request: Request) -> Response:
        game = self._live_game(request.path_params["game_id"])
        self.requests.append({"path": request.url.path, "params": {}})
        if game is None:
            return JSONResponse({"error": "Not found"}, 404)

        def cut(ply: int) -> None:
            if game.drop_at_ply == ply:
                game.drop_at_ply = None
                raise ConnectionResetError("fake Lichess cut the game stream")

        async def lines() -> AsyncIterator[bytes]:
            ply = max(0, game.ply_now(behind=game.delay))  # a spectator sees the game late
            yield _line(game.game_json(ply, game.finished(behind=game.delay)))
            for p in range(ply + 1):  # the game so far, from its first position
                cut(p)  # a stream opened late (a loaded machine) is cut at the same ply
                yield _line(game.position_json(p))
            while ply < len(game.sans):
                ply += 1
                wait = game.begin() + ply * game.pace + game.delay - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                cut(ply)
                yield _line(game.position_json(ply))
            yield _line(game.game_json(len(game.sans), True))

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    def start(self) -> FakeLichess:
        self.http.serve(
            [
                Route("/api/games/user/{username}", self.export),
                Route("/api/users/status", self.users_status),
                Route("/api/stream/game/{game_id}", self.stream_game),
            ]
        )
        return self

    def stop(self) -> None:
        self.http.stop()


def _line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj) + "\n").encode()


def serve_forever(users: dict[str, int]) -> None:
    """Run the fake in this process until killed (the benchmarks run it beside kibitz)."""
    fake = FakeLichess()
    for name, count in users.items():
        fake.add_user(name, count)
    fake.start()
    print(fake.port, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    import sys

    serve_forever({sys.argv[1]: int(sys.argv[2])})
