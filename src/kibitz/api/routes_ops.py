"""JSON API for operators: consumer groups, dead-letter queues (list, replay, discard)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Request

from kibitz import topics
from kibitz.api.deps import container
from kibitz.errors import NotFound
from kibitz.read import models
from kibitz.runtime import dlq, metrics
from kibitz.runtime.bootstrap import SERVICES, Container
from kibitz.runtime.ops import ops_view

router = APIRouter(prefix="/api/ops", tags=["ops"])


def consumer_groups(state: Any, app: Container) -> dict[str, list[str]]:
    """Every service's consumer group and the topics it consumes (worked out once, kept on
    the FastAPI app's `state`)."""
    known: dict[str, list[str]] | None = getattr(state, "ops_groups", None)
    if known is None:
        known = {}
        for build in SERVICES.values():
            service = build(app.ctx)
            known[service.group] = list(service.topics)
        state.ops_groups = known
    return known


async def workers_alive(app: Container) -> dict[str, tuple[int, bool]]:
    """Per group: the workers whose heartbeat is recent (three beats), and whether any ever
    beat. Heartbeats, not the broker's group membership: a broker may keep a killed consumer
    as a member for minutes (issue 17, item 21)."""
    since = time.time() - 3 * app.settings.heartbeat_seconds
    return await app.reader.workers_alive(since)


async def groups_without_members(state: Any, app: Container) -> list[str]:
    """The consumer groups that have had workers and have no live one now: a service whose
    every process died. Groups never run are not counted."""
    alive = await workers_alive(app)
    return sorted(
        group
        for group, consumed in consumer_groups(state, app).items()
        if consumed and group in alive and alive[group][0] == 0
    )


async def refresh_gauges(app: Container) -> None:
    """The cluster-wide gauges the API exports (the alerts watch them): live workers per
    consumer group that has had any, and messages parked per DLQ."""
    for group, (alive, ever) in (await workers_alive(app)).items():
        if ever:
            metrics.GROUP_WORKERS_ALIVE.labels(group).set(alive)
    for topic in sorted(topics.CONSUMED):
        metrics.DLQ_PARKED.labels(topic).set(await dlq.parked_count(app.ctx.event_log, topic))


def _topic(topic: str) -> str:
    if topic not in topics.CONSUMED:
        raise NotFound(
            f"no dead-letter queue for {topic!r}; topics: {', '.join(sorted(topics.CONSUMED))}"
        )
    return topic


@router.get("", response_model=models.OpsView)
async def overview(request: Request, app: Container = Depends(container)) -> dict[str, Any]:
    """Per consumer group: members (workers alive), lag, committed offsets; messages parked
    per DLQ; the latest failures."""
    view = await ops_view(app.ctx.event_log, consumer_groups(request.app.state, app))
    alive = await workers_alive(app)
    for group in view["groups"]:
        group["alive"] = alive.get(group["group"], (0, False))[0]
    return view


@router.get("/dlq/{topic}", response_model=models.ParkedList)
async def parked(topic: str, app: Container = Depends(container)) -> dict[str, Any]:
    """What is parked on `topic`'s DLQ, oldest first, with the error of each."""
    records = await dlq.parked(app.ctx.event_log, _topic(topic))
    return {"topic": topic, "parked": [dlq.describe(r) for r in records]}


@router.post("/dlq/{topic}/replay", response_model=models.Replayed)
async def replay(
    topic: str, request: Request, app: Container = Depends(container)
) -> dict[str, Any]:
    """Put every parked message back on `topic`."""
    count = await dlq.settle(app.ctx.event_log, _topic(topic), discard=False)
    return {"topic": topic, "replayed": count}


@router.post("/dlq/{topic}/discard", response_model=models.Discarded)
async def discard(topic: str, app: Container = Depends(container)) -> dict[str, Any]:
    """Drop every parked message of `topic`'s DLQ (they stay in the log, marked dealt with)."""
    count = await dlq.settle(app.ctx.event_log, _topic(topic), discard=True)
    return {"topic": topic, "discarded": count}
