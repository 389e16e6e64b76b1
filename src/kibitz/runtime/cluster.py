"""Local processes for trying kibitz out and for its tests: `kibitz up --distributed`'s
cluster of services, and the broker it runs (`kibitz.runtime.kafka`)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def terminate(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM a child process, SIGKILL it if it is still there after `timeout` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class LocalBroker:
    """A broker started on 127.0.0.1 (`kibitz.runtime.kafka.start_kafka`)."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    argv: list[str]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        terminate(self.process)


def wait_listening(
    process: subprocess.Popen[bytes], port: int, log_path: Path, what: str, timeout: float
) -> None:
    """Wait until `process` accepts connections on 127.0.0.1:`port`; kill it and raise if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the {what} exited at start; see {log_path}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the {what} did not listen on {port} within {timeout}s; see {log_path}")


# --- `kibitz up --distributed`: every service its own process, on this machine -------------


@dataclass
class ClusterProcess:
    name: str
    pid: int
    log: str
    metrics_port: int | None = None
    argv: list[str] | None = None
    started: int | None = None  # start_time(pid) when it was started: the pid may be reused
    held: bool = False  # stopped on purpose (`restart`): the watchdog leaves it alone
    restarts: int = 0  # how often the watchdog started it again
    gave_up: bool = False  # it kept dying: the watchdog stopped starting it


def start_time(pid: int) -> int | None:
    """When `pid` started (clock ticks after boot, field 22 of /proc/PID/stat), None when it is
    gone or there is no /proc. With the pid it names one process, even once the pid is reused
    (the kernel reuses pids soon: pid_max is 32768 on many machines)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # from field 3 (state) on
    return int(fields[19]) if len(fields) > 19 and fields[19].isdigit() else None


def _alive(pid: int, started: int | None = None) -> bool:
    """Whether the process `pid` (started at `started`, when known) still runs. A pid now
    held by another process is not it: it is never waited for nor signalled."""
    import os

    if started is not None:
        now = start_time(pid)
        if now is not None and now != started:
            return False
    try:  # our own child that exited is a zombie until reaped: reap it
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Whether `pid` has exited but its parent (another process's child: `kibitz restart`, a
    test, an init that does not reap) has not collected it yet: it is gone, not running."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # no /proc (not Linux) or gone already: kill(pid, 0) decided
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def cluster_file(home: Path) -> Path:
    return home / "cluster.json"


@contextlib.contextmanager
def cluster_lock(home: Path) -> Iterator[None]:
    """Hold the cluster file for a read-modify-write (`restart`, the watchdog, `down`)."""
    import fcntl

    home.mkdir(parents=True, exist_ok=True)
    with (home / "cluster.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def read_cluster(home: Path) -> dict[str, Any] | None:
    import json

    path = cluster_file(home)
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None


def write_cluster(home: Path, data: dict[str, Any]) -> None:
    """Replace the cluster file at once (a reader never sees half of it)."""
    import json
    import os

    path = cluster_file(home)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(data, indent=2))
    partial.replace(path)


def running_cluster(home: Path) -> list[ClusterProcess]:
    """The processes `kibitz up` started that are still alive (none: nothing is up)."""
    data = read_cluster(home)
    if data is None:
        return []
    return [
        ClusterProcess(**p) for p in data["processes"] if _alive(int(p["pid"]), p.get("started"))
    ]


def spawn(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> ClusterProcess:
    """Start one detached process (its own session: it outlives `kibitz up`)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return ClusterProcess(
        name, process.pid, str(log), argv=list(argv), started=start_time(process.pid)
    )


def restart(
    home: Path,
    name: str,
    env: dict[str, str],
    *,
    stop_signal: int | None = None,
    down_for: float = 0.0,
) -> ClusterProcess:
    """Stop one process of the cluster (SIGKILL unless `stop_signal` says otherwise), leave it
    down for `down_for` seconds and start it again with the same command line (chaos tests,
    operators). The watchdog leaves it alone meanwhile."""
    import os
    import signal
    from dataclasses import asdict

    with cluster_lock(home):
        data = read_cluster(home)
        if data is None:
            raise RuntimeError(f"no cluster is up in {home}")
        entry = next(p for p in data["processes"] if p["name"] == name)
        if not entry.get("argv"):
            raise RuntimeError(f"{name} was started without a recorded command line")
        entry["held"] = True
        write_cluster(home, data)
    pid, started = int(entry["pid"]), entry.get("started")
    if _alive(pid, started):
        os.kill(pid, signal.SIGKILL if stop_signal is None else stop_signal)
        deadline = time.monotonic() + 30
        while _alive(pid, started):
            if time.monotonic() > deadline:  # it did not stop on that signal
                os.kill(pid, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.05)
    time.sleep(down_for)
    process = spawn(name, list(entry["argv"]), env, Path(entry["log"]).parent)
    process.metrics_port = entry.get("metrics_port")
    process.restarts = int(entry.get("restarts", 0))
    with cluster_lock(home):
        data = read_cluster(home) or {"processes": []}
        data["processes"] = [asdict(process) if p["name"] == name else p for p in data["processes"]]
        write_cluster(home, data)
    return process


def stop_cluster(home: Path, timeout: float = 30.0) -> list[str]:
    """SIGTERM what `kibitz up` started (the watchdog first, the broker last), SIGKILL what
    does not stop in time; returns the names stopped."""
    import os
    import signal

    processes = running_cluster(home)
    stopped = []
    for group in (
        [p for p in processes if p.name == "watchdog"],
        [p for p in processes if p.name not in ("watchdog", "broker")],
        [p for p in processes if p.name == "broker"],
    ):
        for process in group:
            try:
                os.kill(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + timeout
        for process in group:
            while _alive(process.pid, process.started) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(process.pid, process.started):
                os.kill(process.pid, signal.SIGKILL)
            stopped.append(process.name)
    with cluster_lock(home):
        cluster_file(home).unlink(missing_ok=True)
    return stopped
