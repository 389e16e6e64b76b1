"""store: validates each raw game (python-chess) and upserts it by id into the store."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from kibitz import topics
from kibitz.adapters.store_models import Game, Sync, SyncEntry, SyncGame
from kibitz.adapters.store_sql import SqlStore
from kibitz.domain.games import GameRecord, content_id, game_from_lichess, game_from_pgn
from kibitz.errors import InvalidPgn
from kibitz.events import Envelope, GameRejected, GameStored, Payload, RawGame
from kibitz.runtime.consumer import RetryPolicy
from kibitz.runtime.service import Service
from kibitz.services.context import Context


def _game_row(record: GameRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "source": record.source,
        "white_id": record.white_id,
        "black_id": record.black_id,
        "white_name": record.white_name,
        "black_name": record.black_name,
        "white_rating": record.white_rating,
        "black_rating": record.black_rating,
        "result": record.result,
        "status": record.status,
        "winner": record.winner,
        "rated": record.rated,
        "variant": record.variant,
        "speed": record.speed,
        "perf": record.perf,
        "opening_eco": record.opening_eco,
        "opening_name": record.opening_name,
        "opening_ply": record.opening_ply,
        "clock_initial": record.clock_initial,
        "clock_increment": record.clock_increment,
        "initial_fen": record.initial_fen,
        "moves_uci": " ".join(record.moves_uci),
        "moves_san": " ".join(record.moves_san),
        "ply_count": len(record.moves_uci),
        "clocks_cs": record.clocks_cs,
        "server_analysis": record.server_analysis,
        "player_analysis": record.player_analysis,
        "pgn_evals": record.pgn_evals,
        "headers": record.headers or None,
        "raw_json": record.raw_json,
        "pgn": record.pgn,
        "played_at": record.played_at,
        "played_at_ms": record.played_at_ms,
        "content_hash": record.content_hash(),
        "updated_at": datetime.now(UTC),
    }


def upsert_games(session: Session, store: SqlStore, records: list[GameRecord]) -> dict[str, bool]:
    """Insert new games and update changed ones (unchanged ones are not touched).

    Returns game id → True when the game was new. The last record of an id wins.
    """
    rows = {r.id: _game_row(r) for r in records}
    existing = {
        gid: digest
        for gid, digest in session.execute(
            select(Game.id, Game.content_hash).where(Game.id.in_(list(rows)))
        )
    }
    new_rows = [row for gid, row in rows.items() if gid not in existing]
    now = datetime.now(UTC)
    store.bulk_insert(session, Game, [{**row, "created_at": now} for row in new_rows])
    for gid, row in rows.items():
        if gid in existing and existing[gid] != row["content_hash"]:
            session.execute(update(Game).where(Game.id == gid).values(**row))
    return {gid: gid not in existing for gid in rows}


def distinct_ids(session: Session, records: list[GameRecord]) -> list[GameRecord]:
    """`records`, where a PGN game whose id (from a URL in its headers) is already another
    game's, stored or earlier in the batch, gets the id of its own content instead: two
    different games (other players) never share an id. Lichess's own ids are authoritative."""
    if not any(r.source == "pgn" for r in records):
        return records
    players = {
        gid: (white, black)
        for gid, white, black in session.execute(
            select(Game.id, Game.white_name, Game.black_name).where(
                Game.id.in_([r.id for r in records])
            )
        )
    }
    out = []
    for record in records:
        mine = (record.white_name, record.black_name)
        taken = players.get(record.id)
        if record.source == "pgn" and taken is not None and taken != mine:
            record = replace(record, id=content_id(record.headers, record.moves_uci))
        players.setdefault(record.id, mine)
        out.append(record)
    return out


def _count_into_syncs(
    session: Session, insert: Any, delivered: list[tuple[str, str, bool, int | None]]
) -> None:
    """Count each delivered (sync, game, created, index) into its sync once, however often it
    is delivered: by its index when it has one (a game twice in a file counts twice), else by
    game. New games count once per game. Exact under concurrency: only the rows this
    transaction inserted count (handlers of other partitions update the same sync row)."""
    by_sync: dict[str, list[tuple[str, bool, int | None]]] = {}
    for sync_id, game_id, created, index in delivered:
        by_sync.setdefault(sync_id, []).append((game_id, created, index))
    for sync_id, items in by_sync.items():
        indexes = sorted({i for _, _, i in items if i is not None})
        new_entries = _inserted(
            session,
            insert(SyncEntry),
            SyncEntry.idx,
            [{"sync_id": sync_id, "idx": i} for i in indexes],
        )
        games = {g: c for g, c, _ in items}
        new_games = set(
            _inserted(
                session,
                insert(SyncGame),
                SyncGame.game_id,
                [{"sync_id": sync_id, "game_id": g, "created": c} for g, c in games.items()],
            )
        )
        unindexed = {g for g, _, i in items if i is None}
        stored = len(new_entries) + len(unindexed & new_games)
        if not stored and not new_games:
            continue
        session.execute(
            update(Sync)
            .where(Sync.id == sync_id)
            .values(
                games_stored=Sync.games_stored + stored,
                games_created=Sync.games_created + sum(games[g] for g in new_games),
            )
        )
        _finish_when_accounted(session, sync_id, stored)


def _finish_when_accounted(session: Session, sync_id: str, added: int) -> None:
    """Stamp `finished_at` on the sync when the games just counted (`added`) account for the
    last of those it received: the moment it is done."""
    row = session.execute(
        select(Sync.games_received, Sync.games_stored, Sync.games_rejected).where(
            Sync.id == sync_id
        )
    ).one_or_none()
    if row is None:
        return
    received, stored, rejected = row
    if added and stored + rejected >= received > stored + rejected - added:
        session.execute(
            update(Sync).where(Sync.id == sync_id).values(finished_at=datetime.now(UTC))
        )


def _inserted(
    session: Session, statement: Any, column: Any, rows: list[dict[str, Any]]
) -> list[Any]:
    """The `column` values of the `rows` this INSERT … ON CONFLICT DO NOTHING did insert."""
    if not rows:
        return []
    return list(session.scalars(statement.on_conflict_do_nothing().returning(column), rows))


def parse_raw_game(source: str, lichess_json: str | None, pgn: str | None) -> GameRecord:
    """The game of a games.raw message; raises InvalidPgn with the reason."""
    if source == "lichess" and lichess_json is not None:
        try:
            game = json.loads(lichess_json)
        except ValueError as exc:
            raise InvalidPgn(f"Lichess sent a line that is not JSON: {exc}") from None
        if not isinstance(game, dict):
            raise InvalidPgn("Lichess sent a line that is not a game object")
        return game_from_lichess(game, lichess_json)
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
        raw = [(p.source, p.lichess_json, p.pgn) for p in payloads]
        results = await ctx.run_cpu(parse_raw_games, raw)
        parsed: list[tuple[Envelope, RawGame, GameRecord]] = []
        for (envelope, _), payload, result in zip(batch, payloads, results, strict=True):
            if isinstance(result, str):
                await _reject(ctx, envelope, payload, payload.sync_id or payload.import_id, result)
            else:
                parsed.append((envelope, payload, result))
        if not parsed:
            return

        def write(session: Session) -> tuple[list[GameRecord], dict[str, bool]]:
            records = distinct_ids(session, [r for _, _, r in parsed])
            created = upsert_games(session, ctx.store, records)
            _count_into_syncs(
                session,
                ctx.store.insert,
                [
                    (p.sync_id or p.import_id or "", r.id, created[r.id], p.index)
                    for (_, p, _), r in zip(parsed, records, strict=True)
                    if p.sync_id or p.import_id
                ],
            )
            return records, created

        records, created = await ctx.store.run(write)
        await ctx.publisher.publish_many(
            topics.GAMES_STORED,
            [
                (
                    GameStored(
                        game_id=r.id,
                        created=created[r.id],
                        sync_id=p.sync_id,
                        import_id=p.import_id,
                    ),
                    r.id,
                )
                for (_, p, _), r in zip(parsed, records, strict=True)
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
    def write(session: Session) -> None:
        if not batch_id:
            return
        if payload.index is not None:
            entry = {"sync_id": batch_id, "idx": payload.index}
            if not _inserted(session, ctx.store.insert(SyncEntry), SyncEntry.idx, [entry]):
                return  # counted already: a redelivery
        sync = session.get(Sync, batch_id, with_for_update=not ctx.store.is_sqlite)
        if sync is not None:
            sync.rejected = [*(sync.rejected or []), {"index": payload.index, "reason": reason}]
            sync.games_rejected += 1
            if sync.games_stored + sync.games_rejected == sync.games_received:
                sync.finished_at = datetime.now(UTC)

    await ctx.store.run(write)
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
