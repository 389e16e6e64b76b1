"""store: validates each raw game (python-chess) and upserts it by id into the store."""

from __future__ import annotations

import asyncio
from collections import deque

from kibitz import topics
from kibitz.domain.games import GameRecord, parse_raw_games
from kibitz.errors import InvalidPgn
from kibitz.events import Envelope, GameRejected, GameStored, Payload, RawGame
from kibitz.runtime.consumer import RetryPolicy
from kibitz.runtime.service import Service
from kibitz.services.context import Context

# Games parsed per hand-over to the parsing processes: the next parts are parsed while this
# one is written, so an import takes about the longer of the two, not their sum.
PARSE_CHUNK = 100


def build(ctx: Context) -> Service:
    # As many parts in flight as there are parsing processes (one when parsing runs in a
    # thread): each process parses a part of its own.
    ahead = max(1, ctx.settings.cpu_workers)

    async def handle_raw_games(batch: list[tuple[Envelope, Payload]]) -> None:
        payloads = [p for _, p in batch if isinstance(p, RawGame)]
        if len(payloads) != len(batch):
            raise InvalidPgn("games.raw carried an event that is not a raw game")
        if not payloads:
            return
        envelopes = [e for e, _ in batch]
        starts = iter(range(0, len(payloads), PARSE_CHUNK))
        parsing: deque[tuple[int, asyncio.Future[list[GameRecord | str]]]] = deque()

        def parse_ahead() -> None:
            while len(parsing) < ahead and (start := next(starts, None)) is not None:
                chunk = payloads[start : start + PARSE_CHUNK]
                raw = [(p.source, p.lichess_json or p.game_json, p.pgn) for p in chunk]
                parsing.append((start, asyncio.ensure_future(ctx.run_cpu(parse_raw_games, raw))))

        parse_ahead()
        try:
            while parsing:
                start, part = parsing.popleft()
                results = await part
                parse_ahead()
                end = start + len(results)
                await _store(ctx, envelopes[start:end], payloads[start:end], results)
        finally:  # a failed write leaves the next parts' parses: their results are not wanted
            for _, part in parsing:
                if not part.done():
                    part.cancel()
                elif not part.cancelled():
                    part.exception()  # retrieved, so that asyncio does not log it as lost

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


async def _store(
    ctx: Context,
    envelopes: list[Envelope],
    payloads: list[RawGame],
    results: list[GameRecord | str],
) -> None:
    """Rejects the games that did not parse (by index) and upserts the others."""
    parsed: list[tuple[Envelope, RawGame, GameRecord]] = []
    for envelope, payload, result in zip(envelopes, payloads, results, strict=True):
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
                GameStored(game_id=r.id, created=created, sync_id=p.sync_id, import_id=p.import_id),
                r.id,
            )
            for (_, p, _), (r, created) in zip(parsed, stored, strict=True)
        ],
        causes=[e for e, _, _ in parsed],
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
