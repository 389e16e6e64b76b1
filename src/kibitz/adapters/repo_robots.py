"""The robots repository (`kibitz.ports.store.Robots`) on SQLAlchemy: the pool's instances
and who plays which round, changed atomically."""

from __future__ import annotations

import uuid
from collections import Counter

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from kibitz.adapters.store_models import Robot, RobotAssignment
from kibitz.adapters.store_sql import SqlStore
from kibitz.domain.robots import PERSONALITIES
from kibitz.ports.store import PoolChange, RobotInstance, ScalePolicy


def _new_robot(personality: str, now: float) -> Robot:
    return Robot(
        id=f"{personality.split('_')[1][:3]}-{uuid.uuid4().hex[:8]}",
        personality=personality,
        state="idle",
        state_since=now,
        created_at=now,
    )


def _identity(robot: Robot | None) -> dict[str, str]:
    assert robot is not None
    return {"id": robot.id, "identity": robot.personality}


def _live_count(session: Session) -> int:
    return session.scalar(select(func.count(Robot.id)).where(Robot.state != "released")) or 0


def _choose(session: Session, count: int, exclude: set[str]) -> list[Robot]:
    """Idle robots, one personality after another, longest idle first."""
    idle: dict[str, list[Robot]] = {p: [] for p in PERSONALITIES}
    for robot in session.scalars(
        select(Robot).where(Robot.state == "idle").order_by(Robot.state_since, Robot.id)
    ):
        if robot.id not in exclude and robot.personality in idle:
            idle[robot.personality].append(robot)
    chosen: list[Robot] = []
    while len(chosen) < count and any(idle.values()):
        for personality in PERSONALITIES:
            if idle[personality] and len(chosen) < count:
                chosen.append(idle[personality].pop(0))
    return chosen


def pool_states(session: Session) -> dict[str, int]:
    return dict(
        Counter(
            state
            for (state,) in session.execute(select(Robot.state).where(Robot.state != "released"))
        )
    )


def _scale_one(
    session: Session,
    personality: str,
    policy: ScalePolicy,
    now: float,
    live: int,
    changes: list[PoolChange],
) -> tuple[int, int]:
    """Scale one personality; (its live instances after, live instances in all after)."""
    robots = list(
        session.scalars(
            select(Robot)
            .where(Robot.personality == personality, Robot.state != "released")
            .order_by(Robot.state_since, Robot.id)
        )
    )
    before = len(robots)
    idle = [r for r in robots if r.state == "idle"]
    busy = before - len(idle)
    want = max(0, policy.min_idle - len(idle))
    if before and busy / before >= policy.scale_up_busy:
        want = max(want, 1)
    reason = "scale_up"
    for _ in range(want):
        if live >= policy.max_live:
            break
        robot = _new_robot(personality, now)
        session.add(robot)
        robots.append(robot)
        live += 1
        changes.append(PoolChange("instantiated", personality, robot_id=robot.id))
    surplus = len(idle) - policy.min_idle
    for robot in idle:
        if surplus <= 0 or want:
            break
        if now - robot.state_since >= policy.idle_release:
            robot.state, robot.state_since = "released", now
            surplus -= 1
            live -= 1
            reason = "scale_down"
            changes.append(PoolChange("released", personality, robot_id=robot.id, reason="idle"))
    after = sum(1 for r in robots if r.state != "released")
    if after != before:
        changes.append(PoolChange("scaled", personality, reason=reason, before=before, after=after))
    return after, live


class SqlRobots:
    def __init__(self, store: SqlStore) -> None:
        self.store = store

    async def assign(
        self,
        match_id: str,
        number: int,
        count: int,
        exclude: set[str],
        max_live: int,
        now: float,
    ) -> tuple[list[dict[str, str]], list[PoolChange]]:
        def write(session: Session) -> tuple[list[dict[str, str]], list[PoolChange]]:
            done = session.scalars(
                select(RobotAssignment.robot_id).where(
                    RobotAssignment.match_id == match_id, RobotAssignment.round == number
                )
            ).all()
            if done:
                return [_identity(session.get(Robot, r)) for r in sorted(done)], []
            chosen = _choose(session, count, exclude)
            live = _live_count(session)
            order = list(PERSONALITIES)
            created = []
            while len(chosen) < count and live < max_live:
                personality = order[len(chosen) % len(order)]
                robot = _new_robot(personality, now)
                session.add(robot)
                created.append(PoolChange("instantiated", personality, robot_id=robot.id))
                chosen.append(robot)
                live += 1
            for robot in chosen:
                robot.state, robot.match_id, robot.round = "busy", match_id, number
                robot.state_since = now
                session.add(RobotAssignment(match_id=match_id, round=number, robot_id=robot.id))
            return [_identity(r) for r in sorted(chosen, key=lambda r: r.id)], created

        return await self.store.run(write)

    async def free_round(self, match_id: str, number: int, now: float) -> None:
        await self.store.run(
            lambda s: s.execute(
                update(Robot)
                .where(Robot.match_id == match_id, Robot.round == number, Robot.state == "busy")
                .values(state="idle", match_id=None, round=None, state_since=now)
            )
        )

    async def release_match(self, match_id: str, now: float) -> list[PoolChange]:
        def write(session: Session) -> list[PoolChange]:
            held = list(
                session.scalars(
                    select(Robot).where(Robot.match_id == match_id, Robot.state == "busy")
                )
            )
            for robot in held:
                robot.state, robot.match_id, robot.round = "idle", None, None
                robot.state_since = now
            return [
                PoolChange("released", r.personality, robot_id=r.id, reason="match_completed")
                for r in held
            ]

        return await self.store.run(write)

    async def scale(
        self, policy: ScalePolicy, now: float
    ) -> tuple[dict[str, int], list[PoolChange]]:
        def write(session: Session) -> tuple[dict[str, int], list[PoolChange]]:
            live = _live_count(session)
            counts: dict[str, int] = {}
            changes: list[PoolChange] = []
            for personality in PERSONALITIES:
                counts[personality], live = _scale_one(
                    session, personality, policy, now, live, changes
                )
            return counts, changes

        return await self.store.run(write)

    async def changed_since(self, since: float) -> list[RobotInstance]:
        def read(session: Session) -> list[RobotInstance]:
            rows = session.scalars(
                select(Robot).where(Robot.state_since >= since).order_by(Robot.id)
            )
            return [
                RobotInstance(r.id, r.personality, r.state, r.match_id, r.round, r.state_since)
                for r in rows
            ]

        return await self.store.read(read)

    async def states(self) -> dict[str, int]:
        return await self.store.read(pool_states)

    async def by_personality(self) -> dict[str, dict[str, int]]:
        def read(session: Session) -> dict[str, dict[str, int]]:
            by: dict[str, dict[str, int]] = {p: {"idle": 0, "busy": 0} for p in PERSONALITIES}
            rows = session.execute(
                select(Robot.personality, Robot.state).where(Robot.state != "released")
            )
            for personality, state in rows:
                by.setdefault(personality, {"idle": 0, "busy": 0})[state] += 1
            return by

        return await self.store.read(read)
