"""store: validates each raw game (python-chess) and upserts it by id into the store."""

from __future__ import annotations

import json

from kibitz import topics
from kibitz.domain.games import GameRecord, game_from_chesscom, game_from_lichess, game_from_pgn
from kibitz.errors import InvalidPgn
from kibitz.events import Envelope, GameRejected, GameStored, Payload, RawGame
from kibitz.runtime.consumer import RetryPolicy
from kibitz.runtime.service import Service
from kibitz.services.context import Context

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
    """Each (source, Lichess line, PGN text)'s game, or the reason it is invalid. Runs in a
    worker process when the store service has one: python-chess replay is the CPU-heavy part of
    ingest, and plain strings cross the process boundary far cheaper than models."""
    out: list[GameRecord | str] = []
    for source, lichess_json, pgn in raw:
        try:
            out.append(parse_raw_game(source, lichess_json, pgn))
        except InvalidPgn as exc:
            out.append(exc.detail)
        except Exception as exc:  # whatever a malformed game makes a parser raise
            out.append(f"unreadable game: {type(exc).__name__}: {exc}"[:300])
    return out


def build(ctx: Context) -> Service:
    async def handle_raw_games(batch: list[tuple[Envelope, Payload]]) -> None:
        payloads = [p for _, p in batch if isinstance(p, RawGame)]
        if len(payloads) != len(batch):
            raise InvalidPgn("games.raw carried an event that is not a raw game")
        raw = [(p.source, p.lichess_json or p.game_json, p.pgn) for p in payloads]
        results = await ctx.run_cpu(parse_raw_games, raw)
        parsed: list[tuple[Envelope, RawGame, GameRecord]] = []
        for (envelope, _), payload, result in zip(batch, payloads, results, strict=True):
            if isinstance(result, str):
                await _reject(ctx, envelope, payload, payload.sync_id or payload.import_id, result)
            else:
                parsed.append((envelope, payload, result))
        if not parsed:
            return

        stored = await ctx.store.games.store_games(
            [(r, p.sync_id or p.import_id, p.index) for _, p, r in parsed], ctx.clock.now()
        )
        await ctx.publisher.publish_many(
            topics.GAMES_STORED,
            [
                (
                    GameStored(
                        game_id=r.id, created=created, sync_id=p.sync_id, import_id=p.import_id
                    ),
                    r.id,
                )
                for (_, p, _), (r, created) in zip(parsed, stored, strict=True)
            ],
            causes=[e for e, _, _ in parsed],
        )

    async def handle_dead_letter(envelope: Envelope, payload: Payload, reason: str) -> None:
        # A game that kept failing to store is rejected by index, so its import still ends.
        if isinstance(payload, RawGame):
            batch_id = payload.sync_id or payload.import_id
            await _reject(ctx, envelope, payload, batch_id, f"could not be stored: {reason}")

    return Service(
        name="store",
        batch_handlers={topics.GAMES_RAW: handle_raw_games},
        retry=RetryPolicy(max_attempts=4, base_delay=0.5),
        description="validates and upserts games from games.raw",
        # Upsert by game id and count by (sync, game): a redelivered batch changes nothing.
        record_event_ids=False,
        on_dead_letter=handle_dead_letter,
    )


async def _reject(
    ctx: Context, envelope: Envelope, payload: RawGame, batch_id: str | None, reason: str
) -> None:
    if batch_id:
        await ctx.store.syncs.reject(batch_id, payload.index, reason, ctx.clock.now())
    await ctx.publisher.publish(
        topics.GAMES_REJECTED,
        GameRejected(
            reason=reason,
            sync_id=payload.sync_id,
            import_id=payload.import_id,
            index=payload.index,
        ),
        key=batch_id or "unknown",
        cause=envelope,
    )
