"""Helpers for tests that run kibitz's services in-process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from kibitz.api.views import get_sync
from kibitz.clock import Clock
from kibitz.runtime.bootstrap import Container, bootstrap
from kibitz.settings import Settings, load_settings


def settings_for(
    tmp_path: Path, database_url: str, lichess_url: str = "http://127.0.0.1:9", **extra: Any
) -> Settings:
    return load_settings(
        home=tmp_path / "home",
        database_url=database_url,
        bus_url=f"sqlite:///{tmp_path / 'home' / 'eventlog.db'}",
        lichess_url=lichess_url,
        demo=False,
        **extra,
    )


@asynccontextmanager
async def running(
    settings: Settings, services: list[str] | None = None, clock: Clock | None = None
) -> AsyncIterator[Container]:
    container = bootstrap(settings, clock=clock)
    await container.start(services)
    try:
        yield container
    finally:
        await container.close()


async def wait_for_sync(container: Container, sync_id: str, timeout: float = 120) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            view = await container.ctx.store.read(lambda s: get_sync(s, sync_id))
            if view["status"] in ("done", "failed"):
                return dict(view)
            await asyncio.sleep(0.05)


async def read_topic(container: Container, topic: str) -> list[tuple[Any, Any]]:
    """Every (envelope, payload) of `topic`, partition by partition, in offset order."""
    from kibitz.events import decode

    log = container.ctx.event_log
    out = []
    for partition, end in (await log.end_offsets(topic)).items():
        offset = 0
        while offset < end:
            records = await log.read(topic, partition, offset, 500)
            if not records:
                break
            out.extend(decode(r.value) for r in records)
            offset = records[-1].offset + 1
    return out


async def until(predicate: Any, timeout: float = 60.0, every: float = 0.05) -> Any:
    """Wait for an async predicate to return something truthy; return it."""
    async with asyncio.timeout(timeout):
        while True:
            value = await predicate()
            if value:
                return value
            await asyncio.sleep(every)
