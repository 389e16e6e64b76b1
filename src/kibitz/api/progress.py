"""Events to web pages: one tail of some topics per API process, fanned out to Server-Sent
Events subscribers by key (analysis progress by game; live moves and commentary by game)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence

from kibitz.errors import MalformedEvent
from kibitz.events import Payload, decode
from kibitz.ports import EventLog

log = logging.getLogger("kibitz.api.progress")


class TopicHub:
    def __init__(
        self,
        event_log: EventLog,
        topics: Sequence[str],
        key: Callable[[Payload], str | None],
        name: str,
    ) -> None:
        self.log = event_log
        self.topics = list(topics)
        self.key = key
        self.name = name
        self.subscribers: dict[str, set[asyncio.Queue[Payload]]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"hub-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def subscribe(self, key: str) -> asyncio.Queue[Payload]:
        queue: asyncio.Queue[Payload] = asyncio.Queue(maxsize=1000)
        self.subscribers[key].add(queue)
        return queue

    def unsubscribe(self, key: str, queue: asyncio.Queue[Payload]) -> None:
        self.subscribers[key].discard(queue)
        if not self.subscribers[key]:
            del self.subscribers[key]

    async def _run(self) -> None:
        # A group of its own: every API process sees every event. Events from before this
        # process started are skipped (the store has the state; these are only updates).
        started_ms = int(time.time() * 1000) - 2000
        consumer = self.log.consumer(f"kibitz.api-{self.name}.{uuid.uuid4().hex[:12]}", self.topics)
        await consumer.start()
        try:
            while True:
                for record in await consumer.poll(500, 0.2):
                    if record.timestamp_ms < started_ms:
                        continue
                    try:
                        _, payload = decode(record.value)
                    except MalformedEvent:
                        continue
                    key = self.key(payload)
                    for queue in list(self.subscribers.get(key or "", ())):
                        with contextlib.suppress(asyncio.QueueFull):
                            queue.put_nowait(payload)
        finally:
            await consumer.close()
