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
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import chess
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from kibitz.devtools import free_port

BASE_TIME_MS = 1_700_000_000_000
OPENINGS = [
    ("C50", "Italian Game", 5),
    ("B01", "Scandinavian Defense", 2),
    ("D02", "Queen's Pawn Game", 3),
]


def random_game(
    rng: random.Random, game_id: str, white: str, black: str, created_ms: int
) -> dict[str, Any]:
    """A legal game (python-chess picks random legal moves) in Lichess's export shape."""
    board = chess.Board()
    sans: list[str] = []
    for _ in range(rng.randint(10, 60)):
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


@dataclass
class FakeLichess:
    users: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    queued_statuses: list[int] = field(default_factory=list)
    drop_after: int | None = None  # cut the next stream after this many games
    line_delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    active: int = 0
    max_active: int = 0
    port: int = 0
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_user(self, name: str, count: int, seed: int = 7) -> list[dict[str, Any]]:
        rng = random.Random(seed)
        games = [
            random_game(
                rng,
                f"{seed % 100:02d}{i:06d}",
                name if i % 2 == 0 else f"opp{i % 13}",
                f"opp{i % 13}" if i % 2 == 0 else name,
                BASE_TIME_MS + i * 60_000,
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
                for sent, game in enumerate(chosen):
                    if drop_after is not None and sent == drop_after:
                        raise ConnectionResetError("fake Lichess cut the stream")
                    if self.line_delay:
                        await asyncio.sleep(self.line_delay)
                    yield (json.dumps(game) + "\n").encode()
            finally:
                self.active -= 1

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    def start(self) -> FakeLichess:
        self.port = free_port()
        app = Starlette(routes=[Route("/api/games/user/{username}", self.export)])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="critical")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        while not self._server.started:
            threading.Event().wait(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(5)


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
