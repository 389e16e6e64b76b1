"""What an operator watches: per consumer group its members (workers alive), lag and committed
offsets; what is parked on the dead-letter queues; the latest failures."""

from __future__ import annotations

import asyncio
from typing import Any

from kibitz import topics
from kibitz.ports import EventLog
from kibitz.runtime import dlq
from kibitz.runtime.consumer import RETRY_SUFFIX


async def group_view(
    log: EventLog, group: str, consumed: list[str], ends: dict[str, dict[int, int]]
) -> dict[str, Any]:
    """A group's members and, over its topics and their retry topics, lag and committed
    (`ends`: the topics' end offsets, asked once for every group)."""
    lag = committed = 0
    for topic in consumed:
        for name in (topic, topic + RETRY_SUFFIX):
            done = await log.committed(group, name)
            lag += sum(max(0, end - done.get(p, 0)) for p, end in ends[name].items())
            committed += sum(done.values())
    return {
        "group": group,
        "topics": consumed,
        "members": await log.members(group),
        "lag": lag,
        "committed": committed,
    }


async def ops_view(log: EventLog, groups: dict[str, list[str]]) -> dict[str, Any]:
    """Every group (`groups`: group → the topics it consumes), the DLQs, the latest failures."""
    names = sorted(
        {n for t in groups.values() for topic in t for n in (topic, topic + RETRY_SUFFIX)}
    )
    ends = dict(zip(names, await asyncio.gather(*(log.end_offsets(n) for n in names)), strict=True))
    views = await asyncio.gather(*(group_view(log, g, t, ends) for g, t in groups.items() if t))
    parked: dict[str, list[dict[str, Any]]] = {}
    for topic in sorted(topics.CONSUMED):
        parked[topic] = [dlq.describe(r) for r in await dlq.parked(log, topic)]
    failures = sorted(
        ({**f, "topic": t} for t, fs in parked.items() for f in fs),
        key=lambda f: -int(f["at_ms"] or 0),
    )[:20]
    return {
        "groups": list(views),
        "dlq": [{"topic": t, "parked": len(fs)} for t, fs in parked.items()],
        "failures": failures,
    }
