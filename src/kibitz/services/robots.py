"""The robots service: the pool of robot instances by personality, its scaling, and the
robots of each round.

Robot instances are rows of the store (idle, busy or released); the robot workers that answer
for them are stateless (`robot-worker`). A round asks for N robots, never those it excludes
(the previous round's); the pool spreads them over the personalities, creating instances up
to the maximum when too few are idle. Every `robots_tick` seconds the pool scales: at least
`robots_min_idle` idle per personality, one more when a personality is `robots_scale_up_busy`
busy, idle instances released after `robots_idle_release` seconds beyond the minimum, never
more than `robots_max` in all. Each change is an event on `robot-orchestration-events`, and
every instance's new state goes to the compacted `robot-pool-state` (key: the robot id).
"""

from __future__ import annotations

import logging
import time

from kibitz import topics
from kibitz.events import (
    Envelope,
    MatchCompleted,
    Payload,
    RobotHealthCheck,
    RobotInstantiated,
    RobotPoolScaled,
    RobotReleased,
    RobotStateChanged,
    RoundCompleted,
    RoundRobotsAssigned,
    RoundRobotsNeeded,
)
from kibitz.ports.store import PoolChange, ScalePolicy
from kibitz.runtime import metrics
from kibitz.runtime.dispatch import by_type
from kibitz.runtime.service import Service
from kibitz.services.context import Context

log = logging.getLogger("kibitz.robots")

HEALTH_EVERY_TICKS = 6
STATE_SLACK = 1.0  # seconds: a change stamped just before the last look, written just after it


class RobotPool:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self._looked = 0.0  # the clock when the states were last looked at (0: never)
        # robot id → (state, match, round, since) as last published
        self._published: dict[str, tuple[str, str | None, int | None, float]] = {}

    async def publish_states(self) -> None:
        """Publish every instance whose state changed since the last look to the compacted
        `robot-pool-state`; the first look (a process starting) publishes every instance."""
        now = self.ctx.clock.now()
        since = self._looked - STATE_SLACK if self._looked else float("-inf")
        for robot in await self.ctx.store.robots.changed_since(since):
            seen = (robot.state, robot.match_id, robot.round, robot.state_since)
            if self._published.get(robot.id) == seen:
                continue
            payload = RobotStateChanged(
                robot_id=robot.id,
                personality=robot.personality,
                state=robot.state,
                match_id=robot.match_id,
                round=robot.round,
                since=robot.state_since,
            )
            await self.ctx.publisher.publish(topics.ROBOT_POOL_STATE, payload, robot.id)
            self._published[robot.id] = seen
        self._looked = now
        # What the next look cannot return again need not be remembered.
        old = [k for k, v in self._published.items() if v[3] < since]
        for key in old:
            del self._published[key]

    async def assign(self, cause: Envelope, need: RoundRobotsNeeded) -> list[dict[str, str]]:
        """Robots for a round (the same ones if asked again), spread over personalities."""
        robots, created = await self.ctx.store.robots.assign(
            need.match_id,
            need.round,
            need.count,
            set(need.exclude_robots),
            self.settings.robots_max,
            self.ctx.clock.now(),
        )
        await self._announce(created, cause)
        await self.publish_states()
        waited = max(0.0, time.time() - cause.occurred_at.timestamp())  # asked → assigned
        metrics.ROBOT_ASSIGN_SECONDS.observe(waited)
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

    async def on_needed(self, envelope: Envelope, need: RoundRobotsNeeded) -> None:
        await self.assign(envelope, need)

    async def on_round_completed(self, envelope: Envelope, done: RoundCompleted) -> None:
        await self.free(done.match_id, done.round)

    async def free(self, match_id: str, number: int) -> None:
        """A round is over: its robots are idle again (the next round may exclude them)."""
        await self.ctx.store.robots.free_round(match_id, number, self.ctx.clock.now())
        await self.publish_states()

    async def release_match(self, cause: Envelope, done: MatchCompleted) -> None:
        """The match is over: every robot still held by it goes back to the pool."""
        released = await self.ctx.store.robots.release_match(done.match_id, self.ctx.clock.now())
        await self._announce(released, cause)
        await self.publish_states()

    async def scale(self) -> dict[str, int]:
        """One scaling pass; returns the live instances per personality after it."""
        s = self.settings
        policy = ScalePolicy(
            min_idle=s.robots_min_idle,
            scale_up_busy=s.robots_scale_up_busy,
            max_live=s.robots_max,
            idle_release=s.robots_idle_release,
        )
        counts, changes = await self.ctx.store.robots.scale(policy, self.ctx.clock.now())
        await self._announce(changes, None)
        await self.publish_states()
        for personality, by_state in (await self.ctx.store.robots.by_personality()).items():
            for state in ("idle", "busy"):
                metrics.ROBOTS.labels(personality, state).set(by_state[state])
        return counts

    async def _announce(self, changes: list[PoolChange], cause: Envelope | None) -> None:
        for change in changes:
            payload: Payload
            if change.kind == "instantiated":
                payload = RobotInstantiated(
                    robot_id=change.robot_id or "", personality=change.personality
                )
            elif change.kind == "released":
                payload = RobotReleased(
                    robot_id=change.robot_id or "",
                    personality=change.personality,
                    reason=change.reason,
                )
            else:
                metrics.ROBOT_POOL_SCALED.labels(change.personality, change.reason).inc()
                payload = RobotPoolScaled(
                    personality=change.personality,
                    before=change.before,
                    after=change.after,
                    reason=change.reason,
                )
            await self._publish(payload, change.robot_id or change.personality, cause)

    async def health(self) -> None:
        """The pool's state, and how many commands wait for a robot worker (none running, or
        all of them stuck, shows here)."""
        states = await self.ctx.store.robots.states()
        lag = await self.ctx.event_log.lag("kibitz.robot-worker", topics.ROBOT_COMMANDS)
        await self._publish(
            RobotHealthCheck(robots=states, unanswered=sum(lag.values())), "pool", None
        )

    async def _publish(self, payload: Payload, key: str, cause: Envelope | None) -> None:
        await self.ctx.publisher.publish(topics.ROBOT_EVENTS, payload, key, cause=cause)


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
        handlers={
            topics.MATCH_EVENTS: by_type(
                "the robot pool",
                {
                    RoundRobotsNeeded: pool.on_needed,
                    RoundCompleted: pool.on_round_completed,
                    MatchCompleted: pool.release_match,
                },
                ignore=(Payload,),  # every other match event is none of the pool's business
            )
        },
        loops=[scaling],
        record_event_ids=False,  # assignments are keyed by (match, round, robot)
        description="the robot pool: personalities, scaling, per-round assignment, health",
        component=pool,
    )
