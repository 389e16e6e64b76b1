"""Analysis progress to web pages: one tail of `analysis.progress` per API process, fanned out
to Server-Sent Events subscribers by game."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict

from kibitz import topics
from kibitz.errors import MalformedEvent
from kibitz.events import AnalysisProgress, decode
from kibitz.ports import EventLog

log = logging.getLogger("kibitz.api.progress")


class ProgressHub:
    def __init__(self, event_log: EventLog) -> None:
        self.log = event_log
        self.subscribers: dict[str, set[asyncio.Queue[AnalysisProgress]]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="progress-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def subscribe(self, game_id: str) -> asyncio.Queue[AnalysisProgress]:
        queue: asyncio.Queue[AnalysisProgress] = asyncio.Queue(maxsize=1000)
        self.subscribers[game_id].add(queue)
        return queue

    def unsubscribe(self, game_id: str, queue: asyncio.Queue[AnalysisProgress]) -> None:
        self.subscribers[game_id].discard(queue)
        if not self.subscribers[game_id]:
            del self.subscribers[game_id]

    async def _run(self) -> None:
        # A group of its own: every API process sees every progress event. Events from before
        # this process started are skipped (the store has the state; these are only updates).
        started_ms = int(time.time() * 1000) - 2000
        consumer = self.log.consumer(
            f"kibitz.api-progress.{uuid.uuid4().hex[:12]}", [topics.ANALYSIS_PROGRESS]
        )
        await consumer.start()
        try:
            while True:
                for record in await consumer.poll(500, 0.5):
                    if record.timestamp_ms < started_ms:
                        continue
                    try:
                        _, payload = decode(record.value)
                    except MalformedEvent:
                        continue
                    if not isinstance(payload, AnalysisProgress):
                        continue
                    for queue in list(self.subscribers.get(payload.game_id, ())):
                        with contextlib.suppress(asyncio.QueueFull):
                            queue.put_nowait(payload)
        finally:
            await consumer.close()
