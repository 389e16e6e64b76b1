"""A local fake of chess.com's published API for tests, driven through KIBITZ_CHESSCOM_URL.

Shapes follow chess.com's documentation of its Published-Data API
(https://www.chess.com/news/view/published-data-api, "Game archives" and "Complete monthly
archives"): `GET /pub/player/{username}/games/archives` answers `{"archives": [URL, ...]}`,
the months with games, oldest first, each URL
`https://api.chess.com/pub/player/{username}/games/{YYYY}/{MM}`; that URL answers
`{"games": [...]}`, each game `{url, pgn, time_control, end_time, rated, uuid, initial_setup,
fen, time_class, rules, white {rating, result, @id, username, uuid}, black {...}}` with the
game's PGN (tags `Event "Live Chess"`, `Site "Chess.com"`, `Link`, `TimeControl`, `%clk`
comments). An unknown user gets 404 `{"code": 0, "message": "User \\"x\\" not found."}`; a
queued status (e.g. 429, chess.com's answer to parallel requests) is answered on demand; a
broken item can be put into a month.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import chess
import chess.pgn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import ThreadedServer

BASE_END_TIME = 1_701_000_000  # 2023-11-26, seconds
API = "https://api.chess.com/pub/player"


def chesscom_game(
    rng: random.Random, number: int, white: str, black: str, end_time: int
) -> dict[str, Any]:
    """A finished live game as a monthly archive lists it, with random legal moves."""
    board = chess.Board()
    game = chess.pgn.Game()
    node: chess.pgn.GameNode = game
    clocks = [180.0, 180.0]
    for _ in range(rng.randint(16, 60)):
        moves = list(board.legal_moves)
        if not moves:
            break
        move = rng.choice(moves)
        side = 0 if board.turn == chess.WHITE else 1
        clocks[side] = max(1.0, clocks[side] - rng.randint(1, 8))
        node = node.add_variation(move)
        node.set_clock(clocks[side])
        board.push(move)
    outcome = board.outcome()
    result = outcome.result() if outcome else rng.choice(["1-0", "0-1"])
    when = datetime.fromtimestamp(end_time, UTC)
    game.headers.update(
        {
            "Event": "Live Chess",
            "Site": "Chess.com",
            "Date": when.strftime("%Y.%m.%d"),
            "Round": "-",
            "White": white,
            "Black": black,
            "Result": result,
            "WhiteElo": str(1400 + number % 300),
            "BlackElo": str(1450 + number % 250),
            "TimeControl": "180",
            "EndDate": when.strftime("%Y.%m.%d"),
            "EndTime": when.strftime("%H:%M:%S"),
            "Termination": f"{white if result == '1-0' else black} won by resignation",
            "Link": f"https://www.chess.com/game/live/{number}",
        }
    )
    pgn = str(game)
    won = {"1-0": ("win", "resigned"), "0-1": ("resigned", "win")}.get(result, ("agreed", "agreed"))
    return {
        "url": f"https://www.chess.com/game/live/{number}",
        "pgn": pgn,
        "time_control": "180",
        "end_time": end_time,
        "rated": True,
        "uuid": f"00000000-0000-4000-8000-{number:012d}",
        "initial_setup": chess.STARTING_FEN,
        "fen": board.fen(),
        "time_class": "blitz",
        "rules": "chess",
        "white": {
            "rating": 1400 + number % 300,
            "result": won[0],
            "@id": f"{API}/{white.lower()}",
            "username": white,
            "uuid": f"w-{number}",
        },
        "black": {
            "rating": 1450 + number % 250,
            "result": won[1],
            "@id": f"{API}/{black.lower()}",
            "username": black,
            "uuid": f"b-{number}",
        },
    }


def _month(end_time: int) -> str:
    return datetime.fromtimestamp(end_time, UTC).strftime("%Y/%m")


@dataclass
class FakeChessCom:
    games: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # user → games
    queued_statuses: list[int] = field(default_factory=list)  # answered before anything else
    rate_limit_at: int | None = None  # the request with this number (1-based) gets a 429
    requests: list[str] = field(default_factory=list)
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
        self, name: str, count: int, seed: int = 3, days_apart: float = 9.0
    ) -> list[dict[str, Any]]:
        """`count` games of `name` (White in even ones), `days_apart` days apart, so they fall
        into several monthly archives."""
        rng = random.Random(seed)
        games = [
            chesscom_game(
                rng,
                90_000_000 + seed * 1000 + i,
                name if i % 2 == 0 else f"rival{i % 3}",
                f"rival{i % 3}" if i % 2 == 0 else name,
                BASE_END_TIME + int(i * days_apart * 86400),
            )
            for i in range(count)
        ]
        self.games.setdefault(name.lower(), []).extend(games)
        return games

    def add_game(self, name: str, game: dict[str, Any] | Any) -> None:
        """Put an item (a game, or anything: a broken one) into the user's archives."""
        self.games.setdefault(name.lower(), []).append(game)

    def _end(self, item: Any) -> int:
        end = item.get("end_time") if isinstance(item, dict) else None
        return end if isinstance(end, int) else BASE_END_TIME

    def _answer_queued(self) -> Response | None:
        if self.rate_limit_at == len(self.requests):
            self.rate_limit_at = None
            return JSONResponse({"code": 0, "message": "Too many requests"}, 429)
        if not self.queued_statuses:
            return None
        status = self.queued_statuses.pop(0)
        return JSONResponse({"code": 0, "message": "Too many requests"}, status)

    async def archives(self, request: Request) -> Response:
        self.requests.append(request.url.path)
        if (queued := self._answer_queued()) is not None:
            return queued
        user = request.path_params["username"]
        games = self.games.get(user.lower())
        if games is None:
            return JSONResponse({"code": 0, "message": f'User "{user}" not found.'}, 404)
        months = sorted({_month(self._end(g)) for g in games})
        return JSONResponse({"archives": [f"{API}/{user.lower()}/games/{m}" for m in months]})

    async def month(self, request: Request) -> Response:
        self.requests.append(request.url.path)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if (queued := self._answer_queued()) is not None:
                return queued
            user = request.path_params["username"]
            wanted = f"{request.path_params['year']}/{request.path_params['month']}"
            games = self.games.get(user.lower())
            if games is None:
                return JSONResponse({"code": 0, "message": f'User "{user}" not found.'}, 404)
            chosen = sorted((g for g in games if _month(self._end(g)) == wanted), key=self._end)
            return JSONResponse({"games": chosen})
        finally:
            self.active -= 1

    def start(self) -> FakeChessCom:
        self.http.serve(
            [
                Route("/pub/player/{username}/games/archives", self.archives),
                Route("/pub/player/{username}/games/{year}/{month}", self.month),
            ]
        )
        return self

    def stop(self) -> None:
        self.http.stop()
