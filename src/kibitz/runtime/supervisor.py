"""Runs services as asyncio tasks: a consumer runner per service, its loops, clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from kibitz.ports import EventLog, ProcessedEvents
from kibitz.ports.store import Workers
from kibitz.runtime.consumer import ConsumerRunner
from kibitz.runtime.identity import process_owner
from kibitz.runtime.service import Loop, Service

log = logging.getLogger("kibitz.supervisor")


class Supervisor:
    def __init__(
        self,
        event_log: EventLog,
        processed: ProcessedEvents,
        services: list[Service],
        *,
        workers: Workers | None = None,
        heartbeat: float = 5.0,
    ) -> None:
        self.event_log = event_log
        self.processed = processed
        self.services = services
        self.workers = workers
        self.heartbeat = heartbeat
        self.owner = process_owner()
        self.runners: dict[str, ConsumerRunner] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for service in self.services:
            if service.topics:
                runner = ConsumerRunner(
                    self.event_log,
                    service.group,
                    service.handlers,
                    batch_handlers=service.batch_handlers,
                    processed=self.processed if service.record_event_ids else None,
                    retry=service.retry,
                    on_dead_letter=service.on_dead_letter,
                )
                self.runners[service.name] = runner
                self._tasks.append(
                    asyncio.create_task(
                        self._keep_running(service.name, runner.run),
                        name=f"{service.name}-consumer",
                    )
                )
            for loop in service.loops:
                self._tasks.append(
                    asyncio.create_task(self._keep_running(service.name, loop), name=service.name)
                )
        if self.workers is not None:
            self._tasks.append(asyncio.create_task(self._beat(), name="heartbeat"))
        log.info("services_started names=%s", ",".join(s.name for s in self.services))

    async def _beat(self) -> None:
        """Say every `heartbeat` seconds that this process's consumers are alive."""
        assert self.workers is not None
        groups = [s.group for s in self.services if s.topics]
        while True:
            try:
                now = time.time()
                await self.workers.beat(groups, self.owner, now, now - 3 * self.heartbeat)
            except Exception as exc:  # the store is away: the next beat tries again
                log.warning("heartbeat_failed: %s", exc)
            await asyncio.sleep(self.heartbeat)

    async def _keep_running(self, name: str, loop: Loop) -> None:
        delay = 1.0
        while True:
            try:
                await loop()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("service_loop_crashed service=%s restart_in=%.0fs", name, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)

    def alive(self) -> dict[str, bool]:
        return {t.get_name(): not t.done() for t in self._tasks}

    async def stop(self) -> None:
        await asyncio.gather(*(r.stop() for r in self.runners.values()), return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.workers is not None:
            with contextlib.suppress(Exception):
                await self.workers.leave(self.owner)
