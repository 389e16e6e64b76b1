"""A service's handlers by message type: its table's handler, ignored types pass, others park."""

from __future__ import annotations

from typing import Any

import pytest

from kibitz.errors import MalformedEvent
from kibitz.events import AnalysisCompleted, LiveSession, SyncRequested, new_event
from kibitz.runtime.dispatch import by_type


async def test_each_payload_goes_to_its_types_handler_and_an_unknown_type_is_malformed() -> None:
    seen: list[Any] = []

    async def on_done(envelope: Any, payload: AnalysisCompleted) -> None:
        seen.append(payload.game_id)

    handle = by_type("the test", {AnalysisCompleted: on_done}, ignore=(LiveSession,))
    done = AnalysisCompleted(game_id="g1", source="engine")
    await handle(new_event(done, "g1"), done)
    session = LiveSession(game_id="g2", username="ann", state="ended")
    await handle(new_event(session, "g2"), session)  # ignored
    assert seen == ["g1"]
    other = SyncRequested(username="ann", sync_id="s1")
    with pytest.raises(MalformedEvent, match=r"the test does not handle games\.sync\.requested"):
        await handle(new_event(other, "ann"), other)
