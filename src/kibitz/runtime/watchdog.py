"""`kibitz up`'s watchdog: starts again any process of the local cluster that died.

It runs as a process of the cluster (`kibitz watchdog`, started by `kibitz up`, stopped first
by `kibitz down`) and looks at the cluster file twice a second. A process found dead is
started again with its recorded command line after a backoff (1 s, then doubling up to 30 s
while it keeps dying within a minute of its start); one that died more than `GIVE_UP_AFTER`
times in ten minutes is left down and marked `gave_up` (its log says why). Restarts are
counted in `kibitz_process_restarts_total{process}` on the watchdog's metrics port and logged.
Processes that `restart` holds (an operator or a chaos test stopped them on purpose) are left
alone. The watchdog ends when the cluster file is gone or on SIGTERM.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kibitz.backoff import Backoff
from kibitz.runtime import metrics
from kibitz.runtime.cluster import (
    _alive,
    cluster_lock,
    read_cluster,
    spawn,
    write_cluster,
)

log = logging.getLogger("kibitz.watchdog")

POLL = 0.5  # seconds between looks
BACKOFF = Backoff(first=1.0, cap=30.0)
STABLE = 60.0  # a process up this long has recovered: its next death waits 1 s again
GIVE_UP_AFTER = 10  # deaths within WINDOW seconds
WINDOW = 600.0


@dataclass
class _Record:
    """One process's recent deaths and when it may be started again."""

    deaths: deque[float] = field(default_factory=deque)
    quick_deaths: int = 0  # in a row, each within STABLE seconds of its start
    started_at: float = 0.0
    due: float | None = None  # when to start it again (None: it runs)


def watch(home: Path, *, poll: float = POLL) -> None:
    """Watch the cluster in `home` until its file is gone or SIGTERM."""
    stop = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    records: dict[str, _Record] = {}
    while not stop:
        if not look(home, records, time.monotonic()):
            return
        time.sleep(poll)


def look(home: Path, records: dict[str, _Record], now: float) -> bool:
    """One look: restart what is due; False once the cluster is gone."""
    with cluster_lock(home):
        data = read_cluster(home)
        if data is None:
            return False
        changed = False
        for entry in data["processes"]:
            name = entry["name"]
            if name == "watchdog" or entry.get("held") or entry.get("gave_up"):
                continue
            record = records.setdefault(name, _Record(started_at=now))
            if _alive(int(entry["pid"]), entry.get("started")):
                continue
            if record.due is None:  # just found dead
                record.deaths.append(now)
                while record.deaths and record.deaths[0] < now - WINDOW:
                    record.deaths.popleft()
                quick = now - record.started_at < STABLE
                record.quick_deaths = record.quick_deaths + 1 if quick else 1
                if len(record.deaths) > GIVE_UP_AFTER:
                    entry["gave_up"] = True
                    changed = True
                    metrics.PROCESSES_GIVEN_UP.labels(name).set(1)
                    log.error(
                        "gave_up process=%s deaths=%d within=%ds: left down; see %s",
                        *(name, len(record.deaths), WINDOW, entry["log"]),
                    )
                    continue
                record.due = now + BACKOFF.delay(record.quick_deaths)
                log.warning(
                    "died process=%s pid=%s restart_in=%.1fs",
                    *(name, entry["pid"], record.due - now),
                )
            if now < record.due or not entry.get("argv"):
                continue
            process = spawn(name, list(entry["argv"]), dict(os.environ), Path(entry["log"]).parent)
            process.metrics_port = entry.get("metrics_port")
            process.restarts = int(entry.get("restarts", 0)) + 1
            entry.clear()
            entry.update(asdict(process))
            record.due, record.started_at = None, now
            changed = True
            metrics.PROCESS_RESTARTS.labels(name).inc()
            log.warning(
                "restarted process=%s pid=%d restarts=%d", name, process.pid, process.restarts
            )
        if changed:
            write_cluster(home, data)
    return True
