"""The tracker: follows Lichess players' ongoing games and publishes every ply to the log.

One asyncio task per tracked player: it asks Lichess which game the player is in
(`/api/users/status?withGameIds=true`), follows that game with Lichess's game stream
(`/api/stream/game/{id}`, NDJSON, pushed by the server: no polling of moves), publishes
`live.sessions` (started / ended with the result) and `live.moves` (key game id, one message
per ply, in order). A dropped stream is opened again; Lichess replays the game from its first
position, and the plies already published (the count is kept in the store) are skipped, so
each ply reaches the log once. After a game the task waits `KIBITZ_TRACK_WAIT` seconds for the
player's next one, then ends and is removed.

A player is tracked by one task in the whole deployment: the task holds a lease on the
player's `tracked_players` row (renewed while it runs); a request for a player someone holds
is answered `already_tracking`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import chess
from prometheus_client import Counter, Gauge

from kibitz import topics
from kibitz.backoff import Backoff
from kibitz.domain.players import check_profile, check_username
from kibitz.errors import (
    InvalidInput,
    KibitzError,
    LichessRateLimited,
    LichessUserNotFound,
    UpstreamUnavailable,
)
from kibitz.events import (
    Envelope,
    LiveMove,
    LiveSession,
    ProfilePublished,
    TrackingRequested,
    new_event,
)
from kibitz.ports.store import LiveGame
from kibitz.runtime.consumer import RetryPolicy
from kibitz.runtime.dispatch import by_type
from kibitz.runtime.identity import process_owner
from kibitz.runtime.service import Service
from kibitz.services.context import Context
from kibitz.tls import tls_context

log = logging.getLogger("kibitz.tracker")

LEASE_SECONDS = 30.0
STALE_REQUEST_SECONDS = 300.0  # tracking requests older than this on the topic are ignored
MAX_STREAM_FAILURES = 20
RECONNECT = Backoff(first=0.2, cap=10.0)  # between attempts to open a game's stream again

TRACKED = Gauge("kibitz_tracked_players", "Players this process is tracking")
LIVE_PLIES = Counter("kibitz_live_plies_total", "Plies published to live.moves")
STREAM_RECONNECTS = Counter("kibitz_live_stream_reconnects_total", "Game streams opened again")
STALE_REQUESTS = Counter(
    "kibitz_tracking_requests_stale_total", "Tracking requests ignored for their age"
)

DRAWN = {"stalemate", "draw"}
PLAYING = {"created", "started"}


class TooManyTracked(KibitzError):
    code = "too_many_tracked"
    http_status = 503


class Tracker:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.owner = process_owner()
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._starting = asyncio.Lock()

    @property
    def active(self) -> int:
        return len(self.tasks)

    async def start(self, username: str, profile: dict[str, Any] | None = None) -> str:
        """Start tracking `username` at once: "tracking_started", or "already_tracking" when
        a task (here or in another process) follows them. TooManyTracked when this process
        follows its maximum."""
        name = check_username(username)
        profile = check_profile(profile or {})
        key = name.lower()
        async with self._starting:
            if key in self.tasks:
                return "already_tracking"
            if len(self.tasks) >= self.ctx.settings.max_tracked:
                raise TooManyTracked(
                    f"this tracker follows {len(self.tasks)} players, its maximum "
                    "(KIBITZ_MAX_TRACKED); try again when one ends"
                )
            claimed = await self.ctx.store.tracking.claim(
                key, name, profile or {}, self.owner, self.ctx.clock.now(), LEASE_SECONDS
            )
            if not claimed:
                return "already_tracking"
            task = asyncio.create_task(self._track(key, name), name=f"track-{key}")
            self.tasks[key] = task
            TRACKED.set(len(self.tasks))
        task.add_done_callback(lambda _: self._forget(key, task))
        await self.ctx.publisher.publish_envelope(
            topics.PROFILES, new_event(ProfilePublished(username=name, profile=profile or {}), key)
        )
        log.info("tracking_started username=%s", name)
        return "tracking_started"

    def _forget(self, key: str, task: asyncio.Task[None]) -> None:
        if self.tasks.get(key) is task:
            del self.tasks[key]
        TRACKED.set(len(self.tasks))

    async def _set_state(
        self, key: str, status: str, *, game_id: str | None = None, reason: str | None = None
    ) -> None:
        await self.ctx.store.tracking.set_state(
            key, self.owner, self.ctx.clock.now(), status=status, game_id=game_id, end_reason=reason
        )

    async def renew_leases(self) -> None:
        """Loop: keep this process's leases alive; when stopped, stop every tracking task."""
        try:
            while True:
                await asyncio.sleep(LEASE_SECONDS / 3)
                try:
                    await self._renew()
                except Exception as exc:  # the store is away: the next round tries again
                    log.warning("tracker_lease_renewal_failed: %s", exc)
        except asyncio.CancelledError:
            await self.stop()
            raise

    async def _renew(self) -> None:
        if not self.tasks:
            return
        until = self.ctx.clock.now() + LEASE_SECONDS
        await self.ctx.store.tracking.renew(list(self.tasks), self.owner, until)

    async def stop(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def handle_request(self, envelope: Envelope, payload: TrackingRequested) -> None:
        """`tracking.requested`: start tracking unless the request is older than 5 minutes."""
        age = self.ctx.clock.now() - envelope.occurred_at.timestamp()
        if age > STALE_REQUEST_SECONDS:
            STALE_REQUESTS.inc()
            log.info("tracking_request_ignored username=%s age_s=%.0f", payload.username, age)
            return
        try:
            await self.start(payload.username, payload.profile)
        except InvalidInput as exc:
            log.warning("tracking_request_invalid %s", exc.detail)

    # --- one player ------------------------------------------------------------------------

    async def _track(self, key: str, name: str) -> None:
        clock, settings = self.ctx.clock, self.ctx.settings
        reason = "stopped"
        try:
            followed: set[str] = set()
            deadline = clock.now() + settings.track_wait
            while True:
                try:
                    game_id = await self.ctx.lichess.playing_game(name)
                except (UpstreamUnavailable, LichessRateLimited) as exc:
                    log.warning("tracker_status_failed username=%s: %s", name, exc.detail)
                    game_id = None
                if game_id and game_id not in followed:
                    followed.add(game_id)
                    await self._set_state(key, "live", game_id=game_id)
                    await self._follow(key, name, game_id)
                    await self._set_state(key, "waiting")
                    deadline = clock.now() + settings.track_wait
                    continue
                if clock.now() >= deadline:
                    reason = f"no game for {settings.track_wait:g} s"
                    return
                await clock.sleep(min(settings.track_poll, max(0.0, deadline - clock.now())))
        except asyncio.CancelledError:
            reason = "tracker stopped"
            raise
        except Exception as exc:
            reason = f"failed: {type(exc).__name__}: {exc}"[:200]
            log.exception("tracker_failed username=%s", name)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._set_state(key, "ended", reason=reason))
            log.info("tracking_ended username=%s reason=%s", name, reason)

    async def _follow(self, key: str, name: str, game_id: str) -> None:
        game = await self.ctx.store.tracking.open_game(game_id, name)
        failures = 0
        while True:
            try:
                if await self._stream_once(game):
                    return
                error = "the stream ended before the game"
            except LichessUserNotFound:
                log.warning("tracker_game_gone game=%s", game_id)
                return
            except (UpstreamUnavailable, LichessRateLimited) as exc:
                error = exc.detail
            failures += 1
            if failures > MAX_STREAM_FAILURES:
                log.error("tracker_gave_up game=%s after %d failures: %s", game_id, failures, error)
                return
            STREAM_RECONNECTS.inc()
            delay = RECONNECT.delay(failures)
            log.info("tracker_reconnect game=%s in %.1fs: %s", game_id, delay, error)
            await self.ctx.clock.sleep(delay)

    async def _stream_once(self, game: LiveGame) -> bool:
        """Read the game stream once; True when the game ended, False when the stream did."""
        board: chess.Board | None = None
        async for line in self.ctx.lichess.stream_game(game.game_id):
            if "id" in line:  # the game's JSON: first line, and again when it ends
                if board is None:
                    board = await self._game_started(game, line)
                    continue
                status = _status_name(line)
                if status not in PLAYING:
                    await self._game_ended(game, line, status, len(board.move_stack))
                    return True
                continue
            if "fen" not in line:
                continue  # lila pushes `{}` to flush its buffer at the end
            if board is None:
                board = chess.Board()
            last = line.get("lm")
            if not last:
                continue  # the first position
            try:
                move = board.parse_uci(last)
            except ValueError:
                raise UpstreamUnavailable(
                    f"game {game.game_id}: move {last} does not fit the position; reconnecting"
                ) from None
            fen_before = board.fen()
            san = board.san(move)
            board.push(move)
            if board.board_fen() != str(line["fen"]).split(" ")[0]:
                raise UpstreamUnavailable(
                    f"game {game.game_id}: the stream's position after {last} differs"
                )
            ply = len(board.move_stack)
            if ply <= game.last_ply:
                continue  # already published (a reconnect replays the game from its start)
            await self._publish_move(game, ply, move, san, fen_before, board.fen(), line)
        return False

    async def _game_started(self, game: LiveGame, info: dict[str, Any]) -> chess.Board:
        initial = info.get("initialFen")
        board = chess.Board(initial) if initial and initial != "startpos" else chess.Board()
        players = info.get("players") or {}
        game.white = _player_name(players.get("white")) or game.white
        game.black = _player_name(players.get("black")) or game.black
        game.initial_fen = board.fen() if initial and initial != "startpos" else None
        clock = info.get("clock") or {}
        game.initial_clock = clock.get("initial") if isinstance(clock, dict) else None

        announce = await self.ctx.store.tracking.game_started(
            game.game_id, game.white, game.black, game.initial_fen
        )
        if announce:
            await self.ctx.publisher.publish_envelope(
                topics.LIVE_SESSIONS,
                new_event(
                    LiveSession(
                        game_id=game.game_id,
                        username=game.username,
                        state="started",
                        white=game.white,
                        black=game.black,
                        initial_fen=game.initial_fen,
                        status=_status_name(info),
                        plies=int(info.get("turns") or 0),
                    ),
                    game.game_id,
                ),
            )
        return board

    async def _publish_move(
        self,
        game: LiveGame,
        ply: int,
        move: chess.Move,
        san: str,
        fen_before: str,
        fen: str,
        line: dict[str, Any],
    ) -> None:
        event = LiveMove(
            game_id=game.game_id,
            username=game.username,
            ply=ply,
            uci=move.uci(),
            san=san,
            fen_before=fen_before,
            fen=fen,
            white=game.white,
            black=game.black,
            white_clock=_int_or_none(line.get("wc")),
            black_clock=_int_or_none(line.get("bc")),
            initial_clock=game.initial_clock,
        )
        await self.ctx.publisher.publish_envelope(topics.LIVE_MOVES, new_event(event, game.game_id))
        log.info("move game=%s ply=%d san=%s", game.game_id, ply, san)
        game.last_ply = ply
        LIVE_PLIES.inc()
        await self.ctx.store.tracking.ply_published(game.game_id, ply)

    async def _game_ended(
        self, game: LiveGame, info: dict[str, Any], status: str, plies: int
    ) -> None:
        winner = info.get("winner")
        result = (
            "1-0"
            if winner == "white"
            else "0-1"
            if winner == "black"
            else "1/2-1/2"
            if status in DRAWN
            else "*"
        )

        await self.ctx.store.tracking.game_ended(game.game_id, status, result, self.ctx.clock.now())
        await self.ctx.publisher.publish_envelope(
            topics.LIVE_SESSIONS,
            new_event(
                LiveSession(
                    game_id=game.game_id,
                    username=game.username,
                    state="ended",
                    white=game.white,
                    black=game.black,
                    status=status,
                    result=result,
                    plies=plies,
                ),
                game.game_id,
            ),
        )
        log.info("game_ended game=%s status=%s result=%s", game.game_id, status, result)


def _status_name(info: dict[str, Any]) -> str:
    status = info.get("status")
    if isinstance(status, dict):
        return str(status.get("name", "unknown"))
    return str(status or "unknown")


def _player_name(player: Any) -> str | None:
    if not isinstance(player, dict):
        return None
    user = player.get("user") or {}
    return str(user.get("name") or user.get("id") or player.get("name") or "") or None


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) else None


async def tracker_active(ctx: Context) -> int | None:
    """How many players the tracker process follows, from its own `GET /health`
    (KIBITZ_TRACKER_URL), when this process runs no tracker; None when it cannot be asked."""
    import httpx

    try:
        async with httpx.AsyncClient(
            base_url=ctx.settings.tracker_url, timeout=2.0, verify=tls_context()
        ) as http:
            health = (await http.get("/health")).json()
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("tracker_unreachable %s: %s", ctx.settings.tracker_url, exc)
        return None
    active = health.get("active_trackers") if isinstance(health, dict) else None
    return active if isinstance(active, int) and not isinstance(active, bool) else None


async def request_tracking(
    ctx: Context, tracker: Tracker | None, username: str, profile: dict[str, Any]
) -> dict[str, Any]:
    """Start tracking from the API: the tracker in this process, else the tracker's own HTTP
    interface (KIBITZ_TRACKER_URL), else the `tracking.requested` topic."""
    name = check_username(username)
    profile = check_profile(profile)
    if tracker is not None:
        status = await tracker.start(name, profile)
        return {"status": status, "username": name, "via": "in-process"}
    import httpx

    token = ctx.settings.api_token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with httpx.AsyncClient(
            base_url=ctx.settings.tracker_url, timeout=5.0, headers=headers, verify=tls_context()
        ) as http:
            response = await http.post(
                "/start-tracking", json={"username": name, "profile": profile}
            )
        if response.status_code == 200:
            return {**response.json(), "via": "tracker"}
        if response.status_code < 500:
            detail = response.json().get("detail", response.text)
            raise InvalidInput(f"the tracker refused: {detail}")
        log.warning("tracker_http_status %d; using the topic", response.status_code)
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("tracker_unreachable %s: %s; using the topic", ctx.settings.tracker_url, exc)
    await ctx.publisher.publish_envelope(
        topics.TRACKING_REQUESTED,
        new_event(TrackingRequested(username=name, profile=profile), name.lower()),
    )
    return {"status": "requested", "username": name, "via": "topic"}


def build(ctx: Context) -> Service:
    tracker = Tracker(ctx)
    return Service(
        name="tracker",
        handlers={
            topics.TRACKING_REQUESTED: by_type(
                "the tracker", {TrackingRequested: tracker.handle_request}
            )
        },
        loops=[tracker.renew_leases],
        retry=RetryPolicy(max_attempts=3, base_delay=1.0, handler_timeout=30.0),
        record_event_ids=True,
        description="follows players' ongoing Lichess games; every ply into live.moves",
        component=tracker,
    )
