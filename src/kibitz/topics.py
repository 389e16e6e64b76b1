"""Every topic of kibitz with its partitioning; failure topics derive from their base topic."""

from __future__ import annotations

from kibitz.ports import TopicSpec
from kibitz.runtime.consumer import DLQ_SUFFIX, RETRY_SUFFIX

GAMES_SYNC_REQUESTED = "games.sync.requested"
GAMES_RAW = "games.raw"
GAMES_STORED = "games.stored"
GAMES_REJECTED = "games.rejected"
ANALYSIS_INTERACTIVE = "analysis.requested.interactive"
ANALYSIS_BATCH = "analysis.requested.batch"
ANALYSIS_PROGRESS = "analysis.progress"
ANALYSIS_COMPLETED = "analysis.completed"
TRACKING_REQUESTED = "tracking.requested"
PROFILES = "profiles"
LIVE_SESSIONS = "live.sessions"
LIVE_MOVES = "live.moves"
COMMENTARY = "commentary"
PROBLEMS_REQUESTED = "problems.generation.requested"
PROBLEMS_GENERATED = "problems.generated"
MATCH_EVENTS = "match-events"
ROBOT_EVENTS = "robot-orchestration-events"
ROBOT_COMMANDS = "robot-commands"
ROBOT_RESPONSES = "robot-responses"
MATCH_STATE = "match-state"
ROBOT_POOL_STATE = "robot-pool-state"

WEEK_MS = 7 * 24 * 3600 * 1000
COMPACT = {"cleanup.policy": "compact"}

BASE_TOPICS: tuple[TopicSpec, ...] = (
    # One partition: one Lichess request at a time across the deployment.
    TopicSpec(GAMES_SYNC_REQUESTED, partitions=1),
    TopicSpec(GAMES_RAW, partitions=8),
    TopicSpec(GAMES_STORED, partitions=8),
    TopicSpec(GAMES_REJECTED, partitions=1),
    TopicSpec(ANALYSIS_INTERACTIVE, partitions=4),
    TopicSpec(ANALYSIS_BATCH, partitions=4),
    TopicSpec(ANALYSIS_PROGRESS, partitions=4, retention_ms=3600 * 1000),  # updates only
    TopicSpec(ANALYSIS_COMPLETED, partitions=4),
    TopicSpec(TRACKING_REQUESTED, partitions=1, retention_ms=24 * 3600 * 1000),
    TopicSpec(PROFILES, partitions=4),
    TopicSpec(LIVE_SESSIONS, partitions=4),
    TopicSpec(LIVE_MOVES, partitions=8),
    TopicSpec(COMMENTARY, partitions=8),
    TopicSpec(PROBLEMS_REQUESTED, partitions=4),
    TopicSpec(PROBLEMS_GENERATED, partitions=4),
    TopicSpec(MATCH_EVENTS, partitions=8, retention_ms=None),  # kept: matches replay from it
    TopicSpec(ROBOT_EVENTS, partitions=4),
    TopicSpec(ROBOT_COMMANDS, partitions=4, retention_ms=24 * 3600 * 1000),
    TopicSpec(ROBOT_RESPONSES, partitions=4, retention_ms=24 * 3600 * 1000),
    # Compacted: the latest state per key is kept for ever, older ones are cleaned away.
    TopicSpec(MATCH_STATE, partitions=8, retention_ms=None, config=COMPACT),
    TopicSpec(ROBOT_POOL_STATE, partitions=4, retention_ms=None, config=COMPACT),
)

# Compacted: the latest record per key is their meaning (seed 004).
STATE_TOPICS: frozenset[str] = frozenset({MATCH_STATE, ROBOT_POOL_STATE})

# Topics with a consumer get a retry topic (same partitioning) and a DLQ (one partition).
CONSUMED: frozenset[str] = frozenset(
    {
        GAMES_SYNC_REQUESTED,
        GAMES_RAW,
        ANALYSIS_INTERACTIVE,
        ANALYSIS_BATCH,
        ANALYSIS_COMPLETED,
        TRACKING_REQUESTED,
        PROFILES,
        LIVE_SESSIONS,
        LIVE_MOVES,
        PROBLEMS_REQUESTED,
        PROBLEMS_GENERATED,
        MATCH_EVENTS,
        ROBOT_EVENTS,
        ROBOT_COMMANDS,
        ROBOT_RESPONSES,
    }
)


def all_topics() -> list[TopicSpec]:
    specs = list(BASE_TOPICS)
    for spec in BASE_TOPICS:
        if spec.name in CONSUMED:
            specs.append(TopicSpec(spec.name + RETRY_SUFFIX, partitions=spec.partitions))
            specs.append(TopicSpec(spec.name + DLQ_SUFFIX, partitions=1, retention_ms=4 * WEEK_MS))
    return specs
