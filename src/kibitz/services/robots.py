"""The robots service: the pool of robot instances by personality, its scaling, and the
robots of each round.

Robot instances are rows of the store (idle, busy or released); the robot workers that answer
for them are stateless (`robot-worker`). A round asks for N robots, never those it excludes
(the previous round's); the pool spreads them over the personalities, creating instances up
to the maximum when too few are idle. Every `robots_tick` seconds the pool scales: at least
`robots_min_idle` idle per personality, one more when a personality is `robots_scale_up_busy`
busy, idle instances released after `robots_idle_release` seconds beyond the minimum, never
more than `robots_max` in all. Each change is an event on `robot-orchestration-events`.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from kibitz import topics
from kibitz.adapters.store_models import Robot, RobotAssignment
from kibitz.domain.robots import PERSONALITIES
from kibitz.events import (
    Envelope,
    MatchCompleted,
    Payload,
    RobotHealthCheck,
    RobotInstantiated,
    RobotPoolScaled,
    RobotReleased,
    RoundCompleted,
    RoundRobotsAssigned,
    RoundRobotsNeeded,
)
from kibitz.runtime import metrics
from kibitz.runtime.service import Service
from kibitz.services.context import Context

log = logging.getLogger("kibitz.robots")

HEALTH_EVERY_TICKS = 6


class RobotPool:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.settings = ctx.settings

    async def handle(self, envelope: Envelope, payload: Payload) -> None:
        if isinstance(payload, RoundRobotsNeeded):
            await self.assign(envelope, payload)
        elif isinstance(payload, RoundCompleted):
            await self.free(payload.match_id, payload.round)
        elif isinstance(payload, MatchCompleted):
            await self.release_match(envelope, payload)
        # every other match event is none of the pool's business

    async def assign(self, cause: Envelope, need: RoundRobotsNeeded) -> list[dict[str, str]]:
        """Robots for a round (the same ones if asked again), spread over personalities."""
        now = self.ctx.clock.now()
        created: list[Robot] = []

        def write(session: Session) -> list[dict[str, str]]:
            done = session.scalars(
                select(RobotAssignment.robot_id).where(
                    RobotAssignment.match_id == need.match_id, RobotAssignment.round == need.round
                )
            ).all()
            if done:
                return [_identity(session.get(Robot, r)) for r in sorted(done)]
            chosen = _choose(session, need.count, set(need.exclude_robots))
            live = _live_count(session)
            order = list(PERSONALITIES)
            while len(chosen) < need.count and live < self.settings.robots_max:
                personality = order[len(chosen) % len(order)]
                robot = _new_robot(personality, now)
                session.add(robot)
                created.append(robot)
                chosen.append(robot)
                live += 1
            for robot in chosen:
                robot.state, robot.match_id, robot.round = "busy", need.match_id, need.round
                robot.state_since = now
                session.add(
                    RobotAssignment(match_id=need.match_id, round=need.round, robot_id=robot.id)
                )
            return [_identity(r) for r in sorted(chosen, key=lambda r: r.id)]

        robots = await self.ctx.store.run(write)
        for robot in created:
            await self._publish(
                RobotInstantiated(robot_id=robot.id, personality=robot.personality), robot.id, cause
            )
        if len(robots) < need.count:
            log.warning(
                "robots_short match=%s round=%d wanted=%d got=%d",
                need.match_id,
                need.round,
                need.count,
                len(robots),
            )
        await self._publish(
            RoundRobotsAssigned(match_id=need.match_id, round=need.round, robots=robots),
            need.match_id,
            cause,
        )
        return robots

    async def free(self, match_id: str, number: int) -> None:
        """A round is over: its robots are idle again (the next round may exclude them)."""
        now = self.ctx.clock.now()
        await self.ctx.store.run(
            lambda s: s.execute(
                update(Robot)
                .where(Robot.match_id == match_id, Robot.round == number, Robot.state == "busy")
                .values(state="idle", match_id=None, round=None, state_since=now)
            )
        )

    async def release_match(self, cause: Envelope, done: MatchCompleted) -> None:
        """The match is over: every robot still held by it goes back to the pool."""
        now = self.ctx.clock.now()

        def write(session: Session) -> list[Robot]:
            held = list(
                session.scalars(
                    select(Robot).where(Robot.match_id == done.match_id, Robot.state == "busy")
                )
            )
            for robot in held:
                robot.state, robot.match_id, robot.round, robot.state_since = (
                    "idle",
                    None,
                    None,
                    now,
                )
            return held

        for robot in await self.ctx.store.run(write):
            await self._publish(
                RobotReleased(
                    robot_id=robot.id, personality=robot.personality, reason="match_completed"
                ),
                robot.id,
                cause,
            )

    async def scale(self) -> dict[str, int]:
        """One scaling pass; returns the live instances per personality after it."""
        now = self.ctx.clock.now()
        settings = self.settings
        events: list[tuple[Payload, str]] = []

        def write(session: Session) -> dict[str, int]:
            live = _live_count(session)
            counts: dict[str, int] = {}
            for personality in PERSONALITIES:
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
                want = max(0, settings.robots_min_idle - len(idle))
                if before and busy / before >= settings.robots_scale_up_busy:
                    want = max(want, 1)
                reason = "scale_up"
                for _ in range(want):
                    if live >= settings.robots_max:
                        break
                    robot = _new_robot(personality, now)
                    session.add(robot)
                    robots.append(robot)
                    live += 1
                    events.append(
                        (RobotInstantiated(robot_id=robot.id, personality=personality), robot.id)
                    )
                surplus = len(idle) - settings.robots_min_idle
                for robot in idle:
                    if surplus <= 0 or want:
                        break
                    if now - robot.state_since >= settings.robots_idle_release:
                        robot.state, robot.state_since = "released", now
                        surplus -= 1
                        live -= 1
                        reason = "scale_down"
                        events.append(
                            (
                                RobotReleased(
                                    robot_id=robot.id, personality=personality, reason="idle"
                                ),
                                robot.id,
                            )
                        )
                after = sum(1 for r in robots if r.state != "released")
                counts[personality] = after
                if after != before:
                    events.append(
                        (
                            RobotPoolScaled(
                                personality=personality, before=before, after=after, reason=reason
                            ),
                            personality,
                        )
                    )
            return counts

        counts = await self.ctx.store.run(write)
        for payload, key in events:
            await self._publish(payload, key, None)
        view = await self.ctx.store.read(pool_view)
        for personality, by_state in view["by_personality"].items():
            for state in ("idle", "busy"):
                metrics.ROBOTS.labels(personality, state).set(by_state[state])
        return counts

    async def health(self) -> None:
        """The pool's state, and how many commands wait for a robot worker (none running, or
        all of them stuck, shows here)."""
        states = await self.ctx.store.read(pool_states)
        lag = await self.ctx.event_log.lag("kibitz.robot-worker", topics.ROBOT_COMMANDS)
        await self._publish(
            RobotHealthCheck(robots=states, unanswered=sum(lag.values())), "pool", None
        )

    async def _publish(self, payload: Payload, key: str, cause: Envelope | None) -> None:
        await self.ctx.publisher.publish(topics.ROBOT_EVENTS, payload, key, cause=cause)


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


def pool_view(session: Session) -> dict[str, Any]:
    rows = session.scalars(select(Robot).where(Robot.state != "released").order_by(Robot.id)).all()
    by: dict[str, dict[str, int]] = {p: {"idle": 0, "busy": 0} for p in PERSONALITIES}
    for robot in rows:
        by.setdefault(robot.personality, {"idle": 0, "busy": 0})[robot.state] += 1
    released = session.scalar(select(func.count(Robot.id)).where(Robot.state == "released")) or 0
    return {
        "total": len(rows),
        "released": released,
        "by_personality": {
            p: {**counts, "identity": PERSONALITIES[p].identity if p in PERSONALITIES else p}
            for p, counts in by.items()
        },
        "robots": [
            {
                "id": r.id,
                "personality": r.personality,
                "state": r.state,
                "match": r.match_id,
                "round": r.round,
            }
            for r in rows
        ],
    }


def build(ctx: Context) -> Service:
    pool = RobotPool(ctx)

    async def scaling() -> None:
        ticks = 0
        while True:
            try:
                await pool.scale()
                if ticks % HEALTH_EVERY_TICKS == 0:
                    await pool.health()
            except Exception as exc:  # the store or the log may be briefly unreachable
                log.warning("robot_pool_tick_failed error=%s", exc)
            ticks += 1
            await ctx.clock.sleep(ctx.settings.robots_tick)

    return Service(
        name="robots",
        handlers={topics.MATCH_EVENTS: pool.handle},
        loops=[scaling],
        record_event_ids=False,  # assignments are keyed by (match, round, robot)
        description="the robot pool: personalities, scaling, per-round assignment, health",
        component=pool,
    )
