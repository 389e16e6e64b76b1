"""Publishing events: one envelope, JSON on the wire, keyed, with the type in a header."""

from __future__ import annotations

from collections.abc import Sequence

from kibitz.events import Envelope, Payload, new_event
from kibitz.ports import EventLog


class Publisher:
    def __init__(self, log: EventLog) -> None:
        self.log = log

    async def publish(
        self,
        topic: str,
        payload: Payload,
        key: str,
        *,
        cause: Envelope | None = None,
        correlation_id: str | None = None,
    ) -> Envelope:
        """Append `payload` to `topic` under `key`; returns the envelope written."""
        envelope = new_event(payload, key, cause=cause, correlation_id=correlation_id)
        await self.publish_envelope(topic, envelope)
        return envelope

    async def publish_many(
        self,
        topic: str,
        events: Sequence[tuple[Payload, str]],
        *,
        causes: Sequence[Envelope | None] | None = None,
    ) -> list[Envelope]:
        """Append many (payload, key) events to `topic` in one pipelined batch."""
        envelopes = [
            new_event(payload, key, cause=causes[i] if causes else None)
            for i, (payload, key) in enumerate(events)
        ]
        await self.log.append_many(
            topic,
            [
                (e.key, e.to_bytes(), [("type", e.type.encode()), ("id", e.id.encode())])
                for e in envelopes
            ],
        )
        return envelopes

    async def publish_envelope(self, topic: str, envelope: Envelope) -> None:
        await self.log.append(
            topic,
            envelope.key,
            envelope.to_bytes(),
            [("type", envelope.type.encode()), ("id", envelope.id.encode())],
        )
