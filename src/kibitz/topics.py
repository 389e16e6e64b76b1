"""Every topic of kibitz with its partitioning; failure topics derive from their base topic."""

from __future__ import annotations

from kibitz.ports import TopicSpec
from kibitz.runtime.consumer import DLQ_SUFFIX, RETRY_SUFFIX

GAMES_SYNC_REQUESTED = "games.sync.requested"
GAMES_RAW = "games.raw"
GAMES_STORED = "games.stored"
GAMES_REJECTED = "games.rejected"

WEEK_MS = 7 * 24 * 3600 * 1000

BASE_TOPICS: tuple[TopicSpec, ...] = (
    # One partition: one Lichess request at a time across the deployment.
    TopicSpec(GAMES_SYNC_REQUESTED, partitions=1),
    TopicSpec(GAMES_RAW, partitions=8),
    TopicSpec(GAMES_STORED, partitions=8),
    TopicSpec(GAMES_REJECTED, partitions=1),
)

# Topics with a consumer get a retry topic (same partitioning) and a DLQ (one partition).
CONSUMED: frozenset[str] = frozenset({GAMES_SYNC_REQUESTED, GAMES_RAW})


def all_topics() -> list[TopicSpec]:
    specs = list(BASE_TOPICS)
    for spec in BASE_TOPICS:
        if spec.name in CONSUMED:
            specs.append(TopicSpec(spec.name + RETRY_SUFFIX, partitions=spec.partitions))
            specs.append(TopicSpec(spec.name + DLQ_SUFFIX, partitions=1, retention_ms=4 * WEEK_MS))
    return specs
