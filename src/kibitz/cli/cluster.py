"""`kibitz up --distributed`, `kibitz down`, `kibitz services`: a local cluster."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from kibitz.cli.common import (
    _fail,
    _logging,
    _settings,
    app,
    console,
)
from kibitz.settings import Settings
from kibitz.tls import tls_context

if TYPE_CHECKING:
    from kibitz.runtime.cluster import ClusterProcess


@app.command()
def up(
    distributed: Annotated[
        bool, typer.Option("--distributed", help="Every service its own process, on Kafka.")
    ] = False,
    analysis_workers: Annotated[int, typer.Option(help="Analysis worker processes.")] = 2,
    port: Annotated[int | None, typer.Option(help="The API's port (default: KIBITZ_PORT).")] = None,
    broker_data: Annotated[
        Path | None,
        typer.Option(
            envvar="KIBITZ_BROKER_DATA",
            help="Where the local Apache Kafka keeps its log (default: KIBITZ_HOME/broker); "
            "kept when it stops: started again on it, nothing is lost.",
        ),
    ] = None,
    services: Annotated[
        str,
        typer.Option(
            help="Only these services, comma-separated (e.g. ingest,store,scheduler,analysis; "
            "the others may run elsewhere). Default: every service."
        ),
    ] = "",
) -> None:
    """Start a local distributed kibitz: Apache Kafka on 127.0.0.1 (unless KIBITZ_BUS_URL
    names a broker; its jars are fetched with Maven the first time), the store at
    KIBITZ_DATABASE_URL (PostgreSQL), the API and each service as its own process. `kibitz
    down` stops what it started."""
    from kibitz.runtime.cluster import stop_cluster

    settings = _check_up(distributed, analysis_workers)
    chosen = _chosen_services(services)
    logs = settings.home / "logs"
    started: list[ClusterProcess] = []
    env = {**os.environ, "KIBITZ_DATABASE_URL": settings.database_url, "KIBITZ_DEMO": "false"}
    api_port = port or settings.port
    try:
        _start_processes(
            settings, env, logs, broker_data, analysis_workers, api_port, started, chosen
        )
    except BaseException:
        _write_cluster(settings.home, env, started)
        stop_cluster(settings.home)
        raise
    _write_cluster(settings.home, env, started)
    started.append(_start_watchdog(settings.home, env, logs))
    url = f"http://127.0.0.1:{api_port}"
    if not _healthy(url, 60):
        stop_cluster(settings.home)
        raise _fail(f"the API did not come up within 60 s; logs in {logs}")
    table = Table("process", "pid", "metrics", "log")
    for p in started:
        table.add_row(p.name, str(p.pid), str(p.metrics_port or ""), p.log)
    console.print(table)
    console.print(
        f"kibitz (distributed) on {url}  bus {env['KIBITZ_BUS_URL']}; `kibitz down` stops it"
    )


def _check_up(distributed: bool, analysis_workers: int) -> Settings:
    """The settings, once `kibitz up`'s options and the machine allow a cluster; else exit 2."""
    from kibitz.runtime.cluster import cluster_file, running_cluster

    if not distributed:
        raise _fail(
            "`kibitz up` starts the distributed shape: add --distributed "
            "(one process: `kibitz serve`)"
        )
    if not 1 <= analysis_workers <= 32:
        raise _fail("--analysis-workers must be between 1 and 32")
    settings = _settings()
    if running_cluster(settings.home):
        raise _fail(
            f"a cluster is already up (see {cluster_file(settings.home)}); `kibitz down` stops it"
        )
    if not settings.database_url.startswith("postgresql"):
        raise _fail(
            "KIBITZ_DATABASE_URL: the distributed shape needs PostgreSQL, e.g. "
            "postgresql+psycopg://postgres@127.0.0.1:5432/kibitz"
        )
    return settings


def _chosen_services(given: str) -> list[str]:
    """The services `--services` names, in the order they start; exit 2 on an unknown one."""
    from kibitz.runtime.bootstrap import SERVICES

    if not given.strip():
        return list(SERVICES)
    names = [n.strip() for n in given.split(",") if n.strip()]
    unknown = [n for n in names if n not in SERVICES]
    if unknown:
        raise _fail(f"--services: no service {', '.join(unknown)}; services: {', '.join(SERVICES)}")
    return [n for n in SERVICES if n in names]


def _start_processes(
    settings: Settings,
    env: dict[str, str],
    logs: Path,
    broker_data: Path | None,
    analysis_workers: int,
    api_port: int,
    started: list[ClusterProcess],
    services: list[str],
) -> None:
    """Apache Kafka (unless a broker is given), the migration, every service, then the API; each
    process started is added to `started` at once (a failure stops them all)."""
    from kibitz.runtime.cluster import ClusterProcess, free_port, spawn, start_time
    from kibitz.runtime.kafka import fetch, start_kafka

    if settings.bus_is_kafka:
        env["KIBITZ_BUS_URL"] = settings.bus_url
    else:
        try:
            fetch()
            broker = start_kafka(broker_data or settings.home / "broker", env=env)
        except RuntimeError as exc:
            raise _fail(f"cannot start the broker: {exc}") from None
        started.append(
            ClusterProcess(
                "broker",
                broker.process.pid,
                str(broker.log_path),
                argv=broker.argv,
                started=start_time(broker.process.pid),
            )
        )
        env["KIBITZ_BUS_URL"] = f"kafka://{broker.bootstrap}"
    # The tracker's HTTP interface on a port of its own (8001 may be taken, by another
    # cluster for one), unless KIBITZ_TRACKER_PORT says which; the API is told where.
    tracker_port = int(env.get("KIBITZ_TRACKER_PORT") or free_port())
    env["KIBITZ_TRACKER_PORT"] = str(tracker_port)
    env.setdefault("KIBITZ_TRACKER_URL", f"http://127.0.0.1:{tracker_port}")
    kibitz = _kibitz()
    migrated = subprocess.run([kibitz, "db", "upgrade"], env=env, capture_output=True, text=True)
    if migrated.returncode != 0:
        raise _fail(f"cannot migrate the store: {migrated.stderr.strip()[-500:]}")
    for name in services:
        for i in range(analysis_workers if name == "analysis" else 1):
            label = f"{name}-{i + 1}" if name == "analysis" else name
            metrics = free_port()
            process = spawn(label, [kibitz, "run", name, "--metrics-port", str(metrics)], env, logs)
            process.metrics_port = metrics
            started.append(process)
    started.append(
        spawn("api", [kibitz, "serve", "--api-only", "--port", str(api_port)], env, logs)
    )


def _kibitz() -> str:
    """This very `kibitz` (the processes it starts run the same installation)."""
    return str(Path(sys.argv[0]).resolve()) if Path(sys.argv[0]).name == "kibitz" else "kibitz"


def _start_watchdog(home: Path, env: dict[str, str], logs: Path) -> ClusterProcess:
    """The watchdog that starts again what dies, added to the cluster file."""
    from dataclasses import asdict

    from kibitz.runtime.cluster import cluster_lock, free_port, read_cluster, spawn, write_cluster

    metrics = free_port()
    watchdog = spawn("watchdog", [_kibitz(), "watchdog", "--metrics-port", str(metrics)], env, logs)
    watchdog.metrics_port = metrics
    with cluster_lock(home):
        data = read_cluster(home) or {"processes": []}
        data["processes"].append(asdict(watchdog))
        write_cluster(home, data)
    return watchdog


@app.command(hidden=True)
def watchdog(
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve its metrics on this port.")
    ] = None,
) -> None:
    """Start again any process of this home's `kibitz up` cluster that dies (`kibitz up` runs
    it; it ends with the cluster)."""
    from prometheus_client import start_http_server

    from kibitz.runtime.watchdog import watch

    settings = _settings()
    _logging()
    if metrics_port is not None:
        start_http_server(metrics_port, addr="127.0.0.1")
    watch(settings.home)


def _write_cluster(home: Path, env: dict[str, str], started: list[Any]) -> None:
    from dataclasses import asdict

    from kibitz.runtime.cluster import cluster_lock, write_cluster

    with cluster_lock(home):
        write_cluster(
            home, {"bus": env.get("KIBITZ_BUS_URL"), "processes": [asdict(p) for p in started]}
        )


def _healthy(url: str, timeout: float) -> bool:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/health", timeout=2, verify=tls_context()).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    return False


@app.command()
def down() -> None:
    """Stop what `kibitz up --distributed` started (services first, the broker last)."""
    from kibitz.runtime.cluster import stop_cluster

    settings = _settings()
    stopped = stop_cluster(settings.home)
    console.print(f"stopped {len(stopped)} processes" if stopped else "nothing was up")


@app.command()
def services() -> None:
    """List the services `kibitz run` can start."""
    from kibitz.runtime.bootstrap import SERVICES, bootstrap

    table = Table("service", "consumes", "what it does")
    settings = _settings()

    container = bootstrap(settings)
    for name, build in SERVICES.items():
        service = build(container.ctx)
        table.add_row(name, ", ".join(service.topics) or "(clock)", service.description)
    console.print(table)
