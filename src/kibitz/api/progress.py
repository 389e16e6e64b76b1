"""Events to web pages: one tail of some topics per API process, fanned out to Server-Sent
Events subscribers by key (analysis progress by game; live moves and commentary by game)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

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


# --- Server-Sent Events on top of a hub ------------------------------------------------------

KEEP_ALIVE = ": keep-alive\n\n"


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


def sse_response(chunks: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        chunks, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


class Subscription:
    """One client's share of a hub's events for `key`, from the moment it is made (make it
    before reading the store, so that nothing falls in between); `close` when the stream ends."""

    def __init__(self, hub: TopicHub, key: str) -> None:
        self.hub = hub
        self.key = key
        self.queue = hub.subscribe(key)

    async def events(self, request: Request, quiet: float = 10.0) -> AsyncIterator[Payload | None]:
        """Each event while the client stays; None after `quiet` seconds without one (time for
        a keep-alive, or to look at the store)."""
        while not await request.is_disconnected():
            try:
                yield await asyncio.wait_for(self.queue.get(), quiet)
            except TimeoutError:
                yield None

    def close(self) -> None:
        self.hub.unsubscribe(self.key, self.queue)
