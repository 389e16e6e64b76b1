"""The live repositories (`kibitz.ports.store.Tracking`, `Commentaries`) on SQLAlchemy."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from kibitz.adapters import lease_sql
from kibitz.adapters.store_models import Commentary, TrackedPlayer, TrackingSession, Worker
from kibitz.adapters.store_sql import SqlStore
from kibitz.ports.store import LiveGame


def _at(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)


class SqlTracking:
    def __init__(self, store: SqlStore) -> None:
        self.store = store

    async def claim(
        self,
        key: str,
        name: str,
        profile: dict[str, Any],
        owner: str,
        now: float,
        lease_seconds: float,
    ) -> bool:
        store = self.store

        def write(session: Session) -> bool:
            session.execute(
                store.insert(TrackedPlayer)
                .values(username=key, name=name, status="ended", profile={}, lease_until=0.0)
                .on_conflict_do_nothing()
            )
            row = session.get(
                TrackedPlayer,
                key,
                with_for_update=not store.is_sqlite,
                populate_existing=True,
            )
            assert row is not None
            if row.status != "ended" and lease_sql.holder(row, owner, now) is not None:
                return False
            row.name, row.profile = name, profile
            lease_sql.take(row, owner, now, lease_seconds)
            row.status, row.game_id, row.end_reason, row.ended_at = "waiting", None, None, None
            row.started_at = row.updated_at = _at(now)
            return True

        return await store.run(write)

    async def set_state(
        self,
        key: str,
        owner: str,
        now: float,
        *,
        status: str,
        game_id: str | None = None,
        end_reason: str | None = None,
    ) -> None:
        values: dict[str, Any] = {"status": status, "updated_at": _at(now)}
        if game_id is not None:
            values["game_id"] = game_id
        if status == "ended":
            values.update(end_reason=end_reason, ended_at=_at(now), lease_until=0.0)
        await self.store.run(
            lambda s: s.execute(
                update(TrackedPlayer)
                .where(TrackedPlayer.username == key, TrackedPlayer.owner == owner)
                .values(**values)
            )
        )

    async def renew(self, keys: Sequence[str], owner: str, until: float) -> None:
        await self.store.run(
            lambda s: s.execute(
                update(TrackedPlayer)
                .where(TrackedPlayer.username.in_(list(keys)), TrackedPlayer.owner == owner)
                .values(lease_until=until)
            )
        )

    async def profile(self, key: str) -> dict[str, Any] | None:
        def read(session: Session) -> dict[str, Any] | None:
            row = session.get(TrackedPlayer, key)
            return dict(row.profile or {}) if row is not None else None

        return await self.store.read(read)

    async def open_game(self, game_id: str, username: str) -> LiveGame:
        def write(session: Session) -> LiveGame:
            row = session.get(TrackingSession, game_id)
            if row is None:
                row = TrackingSession(game_id=game_id, username=username, status="started")
                session.add(row)
                session.flush()
            return LiveGame(
                game_id=game_id,
                username=row.username,
                last_ply=row.last_ply or 0,
                white=row.white,
                black=row.black,
                initial_fen=row.initial_fen,
            )

        return await self.store.run(write)

    async def game_started(
        self, game_id: str, white: str | None, black: str | None, initial_fen: str | None
    ) -> bool:
        def write(session: Session) -> bool:
            row = session.get(TrackingSession, game_id)
            assert row is not None
            announce = row.white is None  # announce each game once, whatever reconnects
            row.white, row.black, row.initial_fen = white, black, initial_fen
            return announce

        return await self.store.run(write)

    async def ply_published(self, game_id: str, ply: int) -> None:
        await self.store.run(
            lambda s: s.execute(
                update(TrackingSession)
                .where(TrackingSession.game_id == game_id, TrackingSession.last_ply < ply)
                .values(last_ply=ply)
            )
        )

    async def game_ended(self, game_id: str, status: str, result: str, now: float) -> None:
        def write(session: Session) -> None:
            row = session.get(TrackingSession, game_id)
            assert row is not None
            row.status, row.result, row.ended_at = status, result, _at(now)

        await self.store.run(write)


class SqlWorkers:
    def __init__(self, store: SqlStore) -> None:
        self.store = store

    async def beat(
        self, groups: Sequence[str], worker: str, now: float, stale_before: float
    ) -> None:
        if not groups:
            return
        rows = [{"consumer_group": g, "worker": worker, "last_seen": now} for g in groups]
        statement = self.store.insert(Worker)
        statement = statement.on_conflict_do_update(
            index_elements=["consumer_group", "worker"],
            set_={"last_seen": statement.excluded.last_seen},
        )
        forget = delete(Worker).where(
            Worker.consumer_group.in_(list(groups)),
            Worker.worker != worker,
            Worker.last_seen < stale_before,
        )

        def write(session: Session) -> None:
            session.execute(statement, rows)
            session.execute(forget)

        await self.store.run(write)

    async def leave(self, worker: str) -> None:
        await self.store.run(
            lambda s: s.execute(update(Worker).where(Worker.worker == worker).values(last_seen=0.0))
        )


class SqlCommentaries:
    def __init__(self, store: SqlStore) -> None:
        self.store = store

    async def exists(self, game_id: str, ply: int) -> bool:
        return await self.store.read(lambda s: s.get(Commentary, (game_id, ply)) is not None)

    async def add(self, line: dict[str, Any]) -> bool:
        # RETURNING, not the row count: psycopg reports -1 for an INSERT … ON CONFLICT, which
        # read as "stored" let two workers both publish the same ply's line.
        statement = (
            self.store.insert(Commentary)
            .values(**line)
            .on_conflict_do_nothing()
            .returning(Commentary.ply)
        )

        def write(session: Session) -> bool:
            return session.execute(statement).scalar() is not None

        return await self.store.run(write)
