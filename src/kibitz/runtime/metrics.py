"""Prometheus metrics of the runtime, shared by every service of a process."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_PROCESSED = Counter(
    "kibitz_messages_processed_total", "Messages handled successfully", ["group", "topic"]
)
MESSAGES_FAILED = Counter(
    "kibitz_messages_failed_total", "Handler failures (each retry counts)", ["group", "topic"]
)
MESSAGES_DEAD = Counter(
    "kibitz_messages_dead_lettered_total", "Messages parked on a DLQ", ["group", "topic"]
)
MESSAGES_DUPLICATE = Counter(
    "kibitz_messages_duplicate_total", "Messages skipped as already processed", ["group", "topic"]
)
HANDLER_SECONDS = Histogram(
    "kibitz_handler_seconds",
    "Time spent in a handler",
    ["group", "topic"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
CONSUMER_LAG = Gauge(
    "kibitz_consumer_lag",
    "Messages not yet committed by the group",
    ["group", "topic", "partition"],
)
ACTIVE_TASKS = Gauge("kibitz_active_tasks", "Handlers running now", ["group"])
ENGINE_SEARCHES = Counter("kibitz_engine_searches_total", "Engine searches made", ["budget"])
ENGINE_BUSY_SECONDS = Counter(
    "kibitz_engine_busy_seconds_total", "Seconds engines spent searching (sum over engines)"
)
ENGINE_WAITING = Gauge("kibitz_engine_waiting_searches", "Searches waiting for a free engine")
ANALYSES_FINISHED = Counter(
    "kibitz_analyses_finished_total", "Game analyses finished", ["status", "source"]
)
EVAL_CACHE_LOOKUPS = Counter(
    "kibitz_eval_cache_lookups_total", "Positions looked up in the evaluation cache"
)
EVAL_CACHE_HITS = Counter(
    "kibitz_eval_cache_hits_total",
    "Positions found in the evaluation cache (hit rate = hits / lookups)",
)
ROBOTS = Gauge("kibitz_robots", "Robot instances of the pool", ["personality", "state"])
