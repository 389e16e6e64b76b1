"""The chess.com adapter: its published API (https://www.chess.com/news/view/published-data-api)
against KIBITZ_CHESSCOM_URL. A player's games are read archive by archive: the list of their
monthly archives (`GET /pub/player/{username}/games/archives`, oldest first), then each month's
games (`GET /pub/player/{username}/games/{YYYY}/{MM}`, `{"games": [...]}`).

chess.com allows serial access without limit and may answer parallel requests with HTTP 429:
every request goes through a RequestGate of its own (one at a time deployment-wide, none for a
minute after a 429), as Lichess's do.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from prometheus_client import Counter

from kibitz.adapters.lichess_http import RequestGate
from kibitz.errors import InvalidInput, RateLimited, UpstreamUnavailable, UserNotFound
from kibitz.tls import tls_context

log = logging.getLogger("kibitz.chesscom")

GATE_NAME = "chesscom"
CHESSCOM_REQUESTS = Counter(
    "kibitz_chesscom_requests_total", "Requests sent to chess.com", ["endpoint"]
)
CHESSCOM_429 = Counter("kibitz_chesscom_rate_limited_total", "HTTP 429 answers from chess.com")


def _month_end_ms(archive_url: str) -> int | None:
    """The end of an archive's month (ms), from its URL's …/YYYY/MM."""
    parts = urlsplit(archive_url).path.rstrip("/").split("/")
    try:
        year, month = int(parts[-2]), int(parts[-1])
    except (ValueError, IndexError):
        return None
    if not (1 <= month <= 12 and 1 <= year <= 9999):
        return None
    following = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return int(following.timestamp() * 1000)


class ChessComClient:
    """A game source (`kibitz.ports.GameSource`) for chess.com: finished games only (its API
    has no live move stream; live games are followed on Lichess)."""

    def __init__(self, base_url: str, gate: RequestGate, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.gate = gate
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"User-Agent": "kibitz/0.1 (+https://github.com/kibitz)"},
            timeout=httpx.Timeout(timeout),
            verify=tls_context(),
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def _get(self, path: str, endpoint: str, username: str) -> Any:
        async with self.gate.turn():
            CHESSCOM_REQUESTS.labels(endpoint).inc()
            try:
                response = await self.http.get(path)
            except httpx.HTTPError as exc:
                raise UpstreamUnavailable(f"chess.com cannot be reached: {exc}") from None
            if response.status_code == 429:
                CHESSCOM_429.inc()
                until = await self.gate.rate_limited()
                raise RateLimited("chess.com asked kibitz to slow down (HTTP 429)", until)
        if response.status_code == 404:
            raise UserNotFound(f"chess.com has no user {username!r}")
        if response.status_code >= 400:
            raise UpstreamUnavailable(f"chess.com answered HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise UpstreamUnavailable("chess.com sent something that is not JSON") from None

    async def stream_games(
        self,
        username: str,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        max_games: int | None = None,
    ) -> AsyncIterator[tuple[str, dict[str, Any] | None]]:
        """The player's finished games oldest first, from `since_ms` (their end time), as
        (the game object as JSON text, the object; None for an item that is not an object:
        the store rejects it by its index). Raises UserNotFound, RateLimited (after recording
        the pause), UpstreamUnavailable."""
        name = username.lower()
        listed = await self._get(f"/pub/player/{name}/games/archives", "archives", username)
        archives = listed.get("archives") if isinstance(listed, dict) else None
        if not isinstance(archives, list):
            raise UpstreamUnavailable("chess.com's archive list has no `archives`")
        sent = 0
        for url in archives:
            if not isinstance(url, str):
                continue
            end = _month_end_ms(url)
            if since_ms is not None and end is not None and end <= since_ms:
                continue  # the whole month ended before
            # Only the path: the archive URLs name chess.com's host, requests go to ours.
            month = await self._get(urlsplit(url).path, "games_month", username)
            games = month.get("games") if isinstance(month, dict) else None
            for game in games if isinstance(games, list) else []:
                ended = game.get("end_time") if isinstance(game, dict) else None
                if isinstance(ended, int) and since_ms is not None and ended * 1000 < since_ms:
                    continue
                if isinstance(ended, int) and until_ms is not None and ended * 1000 > until_ms:
                    return
                yield json.dumps(game), game if isinstance(game, dict) else None
                sent += 1
                if max_games is not None and sent >= max_games:
                    return

    async def playing_game(self, username: str) -> str | None:
        raise InvalidInput("live games are followed on Lichess only")

    async def stream_game(self, game_id: str) -> AsyncIterator[dict[str, Any]]:
        raise InvalidInput("live games are followed on Lichess only")
        yield {}  # pragma: no cover - makes this an async generator
