"""Handlers by message type: a service declares one table, message type → handler, and the
runtime hands each message to the handler of its payload's type."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from kibitz.errors import MalformedEvent
from kibitz.events import Envelope, Payload
from kibitz.runtime.consumer import Handler

TypedHandler = Callable[[Envelope, Any], Awaitable[None]]


def by_type(
    service: str,
    table: Mapping[type[Payload], TypedHandler],
    *,
    ignore: tuple[type[Payload], ...] = (),
) -> Handler:
    """One handler for every topic of `service`: the table's handler of the payload's type;
    `ignore`d types pass; any other type is a MalformedEvent (parked on the DLQ)."""

    async def handle(envelope: Envelope, payload: Payload) -> None:
        handler = table.get(type(payload))
        if handler is not None:
            await handler(envelope, payload)
        elif not isinstance(payload, ignore):
            raise MalformedEvent(f"{service} does not handle {envelope.type}")

    handle.table = dict(table)  # type: ignore[attr-defined]  # for the docs and the tests
    return handle
