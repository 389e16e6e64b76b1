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
# Exported by the API (cluster-wide): what the alerts watch.
GROUP_WORKERS_ALIVE = Gauge(
    "kibitz_group_workers_alive",
    "Processes of a consumer group whose heartbeat is recent (groups that ever ran)",
    ["group"],
)
DLQ_PARKED = Gauge(
    "kibitz_dlq_parked", "Messages parked on a topic's DLQ, not dealt with", ["topic"]
)
ENGINE_SEARCHES = Counter("kibitz_engine_searches_total", "Engine searches made", ["budget"])
ENGINE_BUSY_SECONDS = Counter(
    "kibitz_engine_busy_seconds_total", "Seconds engines spent searching (sum over engines)"
)
ENGINE_WAITING = Gauge("kibitz_engine_waiting_searches", "Searches waiting for a free engine")
ANALYSES_FINISHED = Counter(
    "kibitz_analyses_finished_total",
    "Game analyses finished, by outcome, where the evaluations came from and lane",
    ["status", "source", "lane"],
)
_WAIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
ANALYSES_DEGRADED = Counter(
    "kibitz_analyses_degraded_total",
    "Interactive analyses whose deep pass ran at the batch budget: requests were waiting",
)
ANALYSIS_DEGRADED = Gauge(
    "kibitz_analysis_degraded",
    "1 while this worker runs new interactive deep passes at the batch budget, else 0",
)
ANALYSIS_WAIT_SECONDS = Histogram(
    "kibitz_analysis_wait_seconds",
    "From an analysis request to its start on a worker",
    ["lane"],
    buckets=_WAIT_BUCKETS,
)
ANALYSIS_FIRST_RESULT_SECONDS = Histogram(
    "kibitz_analysis_first_result_seconds",
    "From an analysis request to its quick pass stored (the first evaluations shown)",
    ["lane"],
    buckets=_WAIT_BUCKETS,
)
ANALYSIS_PHASE_SECONDS = Histogram(
    "kibitz_analysis_phase_seconds",
    "Time of each pass of an analysis (quick, deep) on its worker",
    ["phase", "lane"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640),
)
ANALYSIS_SECONDS_BY_LENGTH = Histogram(
    "kibitz_analysis_seconds_by_length",
    "Time of a whole analysis on its worker, by the game's length in plies",
    ["plies"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640),
)


def length_class(plies: int) -> str:
    """The game-length label of ANALYSIS_SECONDS_BY_LENGTH."""
    for bound in (40, 80, 120):
        if plies <= bound:
            return f"<={bound}"
    return ">120"


EVAL_CACHE_LOOKUPS = Counter(
    "kibitz_eval_cache_lookups_total", "Positions looked up in the evaluation cache"
)
EVAL_CACHE_HITS = Counter(
    "kibitz_eval_cache_hits_total",
    "Positions found in the evaluation cache (hit rate = hits / lookups)",
)
ROBOTS = Gauge("kibitz_robots", "Robot instances of the pool", ["personality", "state"])
# Matches (seed 004): created and completed (their ratio is the completion rate), running now,
# how long a round takes; the pool's assignments, scaling and the robots' answers.
MATCHES = Counter("kibitz_matches_total", "Matches that reached a stage", ["stage"])
MATCHES_ACTIVE = Gauge("kibitz_matches_active", "Matches running now")
ROUND_SECONDS = Histogram(
    "kibitz_match_round_seconds",
    "From a round's start to its scores",
    buckets=(1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300),
)
ROBOT_ASSIGN_SECONDS = Histogram(
    "kibitz_robot_assignment_seconds",
    "From a round asking for robots to their assignment",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ROBOT_POOL_SCALED = Counter(
    "kibitz_robot_pool_scaling_events_total",
    "Changes of a personality's pool size",
    ["personality", "reason"],
)
ROBOT_ANSWER_SECONDS = Histogram(
    "kibitz_robot_response_seconds",
    "From a command to a robot to its answer published",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60),
)
ROBOT_ANSWERS = Counter(
    "kibitz_robot_answers_total",
    "Commands a robot worker handled, by outcome (error rate = error / all)",
    ["kind", "outcome"],
)
# `kibitz up`'s watchdog (its own metrics port).
PROCESS_RESTARTS = Counter(
    "kibitz_process_restarts_total", "Cluster processes started again after dying", ["process"]
)
PROCESSES_GIVEN_UP = Gauge(
    "kibitz_process_given_up", "1 when a process kept dying and was left down", ["process"]
)
