"""The players, games and syncs repositories (`kibitz.ports.store`) on SQLAlchemy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from kibitz.adapters.store_models import Game, Player, Sync, SyncEntry, SyncGame
from kibitz.adapters.store_sql import SqlStore
from kibitz.domain.games import GameRecord, content_id


def _at(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)


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
    }


def upsert_games(
    session: Session, store: SqlStore, records: list[GameRecord], now: datetime
) -> dict[str, bool]:
    """Insert new games and update changed ones (unchanged ones are not touched).

    Returns game id → True when the game was new. The last record of an id wins.
    """
    rows = {r.id: {**_game_row(r), "updated_at": now} for r in records}
    existing = {
        gid: digest
        for gid, digest in session.execute(
            select(Game.id, Game.content_hash).where(Game.id.in_(list(rows)))
        )
    }
    new_rows = [row for gid, row in rows.items() if gid not in existing]
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
    session: Session,
    insert: Any,
    delivered: list[tuple[str, str, bool, int | None]],
    now: datetime,
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
        _finish_when_accounted(session, sync_id, stored, now)


def _finish_when_accounted(session: Session, sync_id: str, added: int, now: datetime) -> None:
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
        session.execute(update(Sync).where(Sync.id == sync_id).values(finished_at=now))


def _inserted(
    session: Session, statement: Any, column: Any, rows: list[dict[str, Any]]
) -> list[Any]:
    """The `column` values of the `rows` this INSERT … ON CONFLICT DO NOTHING did insert."""
    if not rows:
        return []
    return list(session.scalars(statement.on_conflict_do_nothing().returning(column), rows))


def latest_game_ms(session: Session, player_id: str) -> int | None:
    value = session.scalar(
        select(func.max(Game.played_at_ms)).where(
            (Game.white_id == player_id) | (Game.black_id == player_id)
        )
    )
    return int(value) if value is not None else None


class SqlGames:
    def __init__(self, store: SqlStore) -> None:
        self.store = store

    async def store_games(
        self, items: Sequence[tuple[GameRecord, str | None, int | None]], now: float
    ) -> list[tuple[GameRecord, bool]]:
        at = _at(now)

        def write(session: Session) -> list[tuple[GameRecord, bool]]:
            records = distinct_ids(session, [r for r, _, _ in items])
            created = upsert_games(session, self.store, records, at)
            _count_into_syncs(
                session,
                self.store.insert,
                [
                    (batch, r.id, created[r.id], index)
                    for (_, batch, index), r in zip(items, records, strict=True)
                    if batch
                ],
                at,
            )
            return [(r, created[r.id]) for r in records]

        return await self.store.run(write)


class SqlPlayers:
    def __init__(self, store: SqlStore) -> None:
        self.store = store

    async def follow(self, player_id: str, name: str, followed: bool) -> None:
        def write(session: Session) -> None:
            player = session.get(Player, player_id)
            if player is None:
                session.add(Player(id=player_id, name=name, followed=followed))
            else:
                player.followed = followed

        await self.store.run(write)

    async def followed(self) -> list[str]:
        return await self.store.read(
            lambda s: list(s.scalars(select(Player.id).where(Player.followed.is_(True))))
        )

    async def due_for_sync(self, due_before: float) -> list[tuple[str, int | None]]:
        cutoff = _at(due_before)

        def read(session: Session) -> list[tuple[str, int | None]]:
            busy = set(
                session.scalars(select(Sync.username).where(Sync.status.in_(("queued", "running"))))
            )
            out = []
            for player in session.scalars(select(Player).where(Player.followed.is_(True))):
                last = player.last_synced_at
                if last is not None and last.tzinfo is None:
                    last = last.replace(tzinfo=UTC)
                if player.id in busy or (last is not None and last > cutoff):
                    continue
                out.append((player.name, latest_game_ms(session, player.id)))
            return out

        return await self.store.read(read)


class SqlSyncs:
    def __init__(self, store: SqlStore) -> None:
        self.store = store

    async def create_sync(
        self, sync_id: str, player_id: str, name: str, kind: str = "lichess"
    ) -> None:
        def write(session: Session) -> None:
            session.execute(
                self.store.insert(Player)
                .values(id=player_id, name=name, followed=False)
                .on_conflict_do_nothing()
            )
            session.add(Sync(id=sync_id, kind=kind, username=player_id, status="queued"))

        await self.store.run(write)

    async def create_import(
        self,
        sync_id: str,
        filename: str | None,
        received: int,
        rejected: list[dict[str, Any]],
        now: float,
    ) -> None:
        sync = Sync(
            id=sync_id,
            kind="pgn",
            filename=filename[:255] if filename else None,
            status="running",
            created_at=_at(now),
            games_received=received,
            games_rejected=len(rejected),
            rejected=rejected,
        )
        await self.store.run(lambda s: s.add(sync))

    async def import_queued(self, sync_id: str, *, finished: bool, now: float) -> None:
        def write(session: Session) -> None:
            sync = session.get(Sync, sync_id)
            if sync is not None and sync.status == "running":
                sync.status = "streamed"
                if finished:
                    sync.finished_at = _at(now)

        await self.store.run(write)

    async def fail_interrupted(self, started_before: float, reason: str, now: float) -> int:
        cutoff = _at(started_before)

        def write(session: Session) -> int:
            stuck = session.scalars(
                select(Sync).where(
                    Sync.kind == "pgn", Sync.status == "running", Sync.created_at <= cutoff
                )
            ).all()
            for sync in stuck:
                sync.status, sync.error, sync.finished_at = "failed", reason, _at(now)
            return len(stuck)

        return await self.store.run(write)

    async def start(self, sync_id: str, player_id: str) -> tuple[int, int | None]:
        def write(session: Session) -> tuple[int, int | None]:
            sync = session.get(Sync, sync_id)
            if sync is None:
                sync = Sync(id=sync_id, kind="lichess", username=player_id)
                session.add(sync)
                session.flush()
            sync.status = "running"
            # A redelivered request resumes after the last game this sync stored.
            resume = latest_game_ms(session, player_id) if sync.games_received else None
            return sync.games_received, resume

        return await self.store.run(write)

    async def report(
        self,
        sync_id: str,
        player_id: str,
        received: int,
        status: str,
        error: str | None,
        now: float,
        notice: str | None = None,
    ) -> None:
        def write(session: Session) -> None:
            sync = session.get(Sync, sync_id)
            if sync is None:
                return
            sync.games_received = received
            sync.status = status
            sync.error = error
            sync.notice = notice[:300] if notice else None
            if status in ("streamed", "failed"):
                sync.finished_at = _at(now)
                player = session.get(Player, player_id)
                if player is not None and status == "streamed":
                    player.last_synced_at = _at(now)

        await self.store.run(write)

    async def fail(self, sync_id: str, reason: str) -> None:
        def write(session: Session) -> None:
            sync = session.get(Sync, sync_id)
            if sync is not None and sync.status not in ("streamed", "failed"):
                sync.status, sync.error = "failed", reason

        await self.store.run(write)

    async def reject(self, sync_id: str, index: int | None, reason: str, now: float) -> None:
        def write(session: Session) -> None:
            if index is not None:
                entry = {"sync_id": sync_id, "idx": index}
                if not _inserted(session, self.store.insert(SyncEntry), SyncEntry.idx, [entry]):
                    return  # counted already: a redelivery
            sync = session.get(Sync, sync_id, with_for_update=not self.store.is_sqlite)
            if sync is not None:
                sync.rejected = [*(sync.rejected or []), {"index": index, "reason": reason}]
                sync.games_rejected += 1
                if sync.games_stored + sync.games_rejected == sync.games_received:
                    sync.finished_at = _at(now)

        await self.store.run(write)
