"""The `kibitz` command line: serve, run services, import, operate the log and the store."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kibitz import topics
from kibitz.errors import CLI_EXIT_USAGE, InvalidInput, KibitzError
from kibitz.runtime.consumer import DLQ_SUFFIX
from kibitz.settings import Settings, load_settings

T = TypeVar("T")

app = typer.Typer(
    help="kibitz: event-driven chess analysis.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The store.", no_args_is_help=True)
dlq_app = typer.Typer(
    help="Dead-letter queues: list and replay parked messages.", no_args_is_help=True
)
bus_app = typer.Typer(help="The event log.", no_args_is_help=True)
import_app = typer.Typer(help="Import games.", no_args_is_help=True)
problems_app = typer.Typer(help="Puzzles from your games.", no_args_is_help=True)
replay_app = typer.Typer(help="Rebuild state from the event log.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(dlq_app, name="dlq")
app.add_typer(bus_app, name="bus")
app.add_typer(import_app, name="import")
app.add_typer(problems_app, name="problems")
app.add_typer(replay_app, name="replay")

console = Console()
err = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(CLI_EXIT_USAGE)


def _settings() -> Settings:
    try:
        return load_settings()
    except KibitzError as exc:
        raise _fail(exc.detail) from None


def _run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    try:
        return asyncio.run(coro_fn())  # type: ignore[arg-type]
    except KibitzError as exc:
        raise _fail(exc.detail) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except OSError as exc:
        raise _fail(f"cannot reach a component: {exc}") from None


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr
    )
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # failures are reported by kibitz
    logging.getLogger("alembic").setLevel(logging.WARNING)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    demo: Annotated[
        bool | None,
        typer.Option(help="Import the offline demo games on first start [default: KIBITZ_DEMO]."),
    ] = None,
    api_only: Annotated[
        bool, typer.Option(help="Serve the API and web UI only; services run as `kibitz run`.")
    ] = False,
) -> None:
    """Run the API, the web UI and (unless --api-only) every service in one process."""
    import uvicorn

    from kibitz.api.app import create_app
    from kibitz.runtime.bootstrap import bootstrap

    settings = _settings()
    if demo is not None:
        settings.demo = demo
    bind = host or settings.host
    _refuse_open_listen(bind, settings)
    _logging()
    _run(lambda: _preflight(settings))
    application = create_app(bootstrap(settings), services=[] if api_only else None)
    console.print(f"kibitz on http://{bind}:{port or settings.port}  (home {settings.home})")
    uvicorn.run(application, host=bind, port=port or settings.port, log_level="warning")


async def _preflight(settings: Settings) -> None:
    """Reach the store and the log once before serving, so a bad URL is one clear line."""
    from kibitz.runtime.bootstrap import bootstrap

    container = bootstrap(settings.model_copy(update={"cpu_workers": 0}))
    try:
        await container.start([])
    finally:
        await container.close()


def _refuse_open_listen(bind: str, settings: Settings) -> None:
    """Exit 2 before listening on a non-loopback address without KIBITZ_API_TOKEN."""
    if not _is_loopback(bind) and not settings.api_token:
        raise _fail(
            f"refusing to listen on {bind} without KIBITZ_API_TOKEN: "
            "set a token, or listen on 127.0.0.1"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def run(
    service: Annotated[str, typer.Argument(help="A name from `kibitz services`.")],
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve Prometheus metrics on this port [default: KIBITZ_METRICS_PORT]."),
    ] = None,
) -> None:
    """Run one service in this process (distributed mode: one process per service)."""
    from prometheus_client import start_http_server

    from kibitz.runtime.bootstrap import SERVICES, bootstrap

    if service not in SERVICES:
        raise _fail(f"no service {service!r}; `kibitz services` lists them")
    settings = _settings()
    _logging()
    port = metrics_port or settings.metrics_port
    if service == "tracker" or port is not None:  # it listens: its HTTP interface, its metrics
        _refuse_open_listen(settings.host, settings)
    if port is not None:
        try:
            start_http_server(port, addr=settings.host)  # GET /metrics (any path, in fact)
        except OSError as exc:
            raise _fail(f"cannot serve metrics on {settings.host}:{port}: {exc}") from None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        container = bootstrap(settings)
        http: asyncio.Task[None] | None = None
        try:
            await container.start([service])
            if service == "tracker":
                http = asyncio.create_task(_serve_tracker(container, settings, stop))
            console.print(f"service {service} running (Ctrl-C or SIGTERM stops it)")
            await stop.wait()
            if http is not None:
                await http
        finally:
            # Finish in-flight work, commit, leave the group, stop the worker processes.
            await container.close()

    _run(main)


async def _serve_tracker(container: Any, settings: Settings, stop: asyncio.Event) -> None:
    """The tracker's own HTTP interface (POST /start-tracking, GET /health) until `stop`."""
    import contextlib
    from collections.abc import Iterator

    import uvicorn

    from kibitz.api.tracker_app import create_tracker_app

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # `run` handles the signals
            yield

    server = Server(
        uvicorn.Config(
            create_tracker_app(container.component("tracker")),
            host=settings.host,
            port=settings.tracker_port,
            log_level="warning",
        )
    )
    serving = asyncio.create_task(server.serve())
    console.print(f"tracker on http://{settings.host}:{settings.tracker_port}")
    await stop.wait()
    server.should_exit = True
    await serving


@app.command()
def up(
    distributed: Annotated[
        bool, typer.Option("--distributed", help="Every service its own process, on Kafka.")
    ] = False,
    analysis_workers: Annotated[int, typer.Option(help="Analysis worker processes.")] = 2,
    port: Annotated[int | None, typer.Option(help="The API's port (default: KIBITZ_PORT).")] = None,
    broker_storage: Annotated[
        str,
        typer.Option(
            envvar="KIBITZ_BROKER_STORAGE",
            help="Where the local broker keeps its log: memory:// (lost when it stops) or "
            "s3://BUCKET/ (kept; AWS_ENDPOINT, AWS_ACCESS_KEY_ID, … say which S3).",
        ),
    ] = "memory://tansu/",
) -> None:
    """Start a local distributed kibitz: a Kafka-protocol broker on 127.0.0.1 (Tansu, unless
    KIBITZ_BUS_URL names Kafka), the store at KIBITZ_DATABASE_URL (PostgreSQL), the API and
    each service as its own process. `kibitz down` stops what it started."""
    import os

    from kibitz.runtime.bootstrap import SERVICES
    from kibitz.runtime.cluster import (
        ClusterProcess,
        check_broker_storage,
        cluster_file,
        free_port,
        running_cluster,
        spawn,
        start_broker,
        stop_cluster,
    )

    if not distributed:
        raise _fail(
            "`kibitz up` starts the distributed shape: add --distributed "
            "(one process: `kibitz serve`)"
        )
    if not 1 <= analysis_workers <= 32:
        raise _fail("--analysis-workers must be between 1 and 32")
    try:
        check_broker_storage(broker_storage)
    except ValueError as exc:
        raise _fail(f"--broker-storage: {exc}") from None
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
    logs = settings.home / "logs"
    started: list[ClusterProcess] = []
    env = {**os.environ, "KIBITZ_DATABASE_URL": settings.database_url, "KIBITZ_DEMO": "false"}
    try:
        if settings.bus_is_kafka:
            env["KIBITZ_BUS_URL"] = settings.bus_url
        else:
            try:
                broker = start_broker(logs, storage=broker_storage, env=env)
            except RuntimeError as exc:
                raise _fail(f"cannot start the broker: {exc}") from None
            started.append(
                ClusterProcess("broker", broker.process.pid, str(broker.log_path), argv=broker.argv)
            )
            env["KIBITZ_BUS_URL"] = f"kafka://{broker.bootstrap}"
        kibitz = (
            str(Path(sys.argv[0]).resolve()) if Path(sys.argv[0]).name == "kibitz" else "kibitz"
        )
        migrated = subprocess.run(
            [kibitz, "db", "upgrade"], env=env, capture_output=True, text=True
        )
        if migrated.returncode != 0:
            raise _fail(f"cannot migrate the store: {migrated.stderr.strip()[-500:]}")
        for name in SERVICES:
            for i in range(analysis_workers if name == "analysis" else 1):
                label = f"{name}-{i + 1}" if name == "analysis" else name
                metrics = free_port()
                process = spawn(
                    label, [kibitz, "run", name, "--metrics-port", str(metrics)], env, logs
                )
                process.metrics_port = metrics
                started.append(process)
        api_port = port or settings.port
        started.append(
            spawn("api", [kibitz, "serve", "--api-only", "--port", str(api_port)], env, logs)
        )
    except BaseException:
        _write_cluster(settings.home, env, started)
        stop_cluster(settings.home)
        raise
    _write_cluster(settings.home, env, started)
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


def _write_cluster(home: Path, env: dict[str, str], started: list[Any]) -> None:
    from dataclasses import asdict

    from kibitz.runtime.cluster import cluster_file

    home.mkdir(parents=True, exist_ok=True)
    cluster_file(home).write_text(
        json.dumps(
            {"bus": env.get("KIBITZ_BUS_URL"), "processes": [asdict(p) for p in started]}, indent=2
        )
    )


def _healthy(url: str, timeout: float) -> bool:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
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


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the store's migrations."""
    from kibitz.adapters.store_sql import SqlStore

    settings = _settings()
    try:
        SqlStore(settings.database_url).upgrade()
    except Exception as exc:
        raise _fail(f"cannot migrate {settings.database_url}: {exc}") from None
    console.print("store is at the latest schema")


async def _with_log(settings: Settings, fn: Callable[[Any], Awaitable[T]]) -> T:
    from kibitz.runtime.bootstrap import make_event_log

    log = make_event_log(settings)
    await log.start()
    try:
        return await fn(log)
    finally:
        await log.close()


@dlq_app.command("list")
def dlq_list(topic: Annotated[str, typer.Argument(help="The base topic, e.g. games.raw")]) -> None:
    """Messages parked on TOPIC.dlq and not yet replayed or discarded."""
    settings = _settings()

    async def main() -> list[Any]:
        from kibitz.runtime.dlq import parked

        return await _with_log(settings, lambda log: parked(log, topic))

    records = _run(main)
    table = Table("offset", "key", "attempts", "error", "from")
    for r in records:
        table.add_row(
            str(r.offset),
            r.key,
            (r.header("attempts") or b"").decode(),
            (r.header("error") or b"").decode(),
            (r.header("source") or b"").decode(),
        )
    console.print(table)
    console.print(f"{len(records)} parked on {topic}{DLQ_SUFFIX}")


@dlq_app.command("replay")
def dlq_replay(
    topic: Annotated[str, typer.Argument(help="The base topic, e.g. games.raw")],
    discard: Annotated[bool, typer.Option(help="Drop them instead of replaying.")] = False,
) -> None:
    """Put TOPIC.dlq's parked messages back on TOPIC (or discard them)."""
    from kibitz.runtime.dlq import settle

    settings = _settings()

    async def main() -> int:
        return await _with_log(settings, lambda log: settle(log, topic, discard=discard))

    count = _run(main)
    console.print(
        f"{'discarded' if discard else 'replayed'} {count} message(s) of {topic}{DLQ_SUFFIX}"
    )


@bus_app.command("tail")
def bus_tail(
    topic: Annotated[str, typer.Argument(help="Topic to follow.")],
    from_beginning: Annotated[bool, typer.Option(help="Start at the oldest message.")] = False,
    count: Annotated[int | None, typer.Option(help="Stop after this many messages.")] = None,
) -> None:
    """Print a topic's events as they arrive, one JSON object a line."""
    settings = _settings()

    async def main() -> None:
        async def tail(log: Any) -> None:
            positions = (
                {p: 0 for p in await log.end_offsets(topic)}
                if from_beginning
                else (await log.end_offsets(topic))
            )
            seen = 0
            while count is None or seen < count:
                got = False
                for partition, offset in positions.items():
                    for r in await log.read(topic, partition, offset, 100):
                        positions[partition] = r.offset + 1
                        try:
                            body: Any = json.loads(r.value)
                        except ValueError:
                            body = r.value.decode(errors="replace")
                        print(
                            json.dumps(
                                {
                                    "partition": r.partition,
                                    "offset": r.offset,
                                    "key": r.key,
                                    "event": body,
                                }
                            ),
                            flush=True,
                        )
                        seen += 1
                        got = True
                        if count is not None and seen >= count:
                            return
                if not got:
                    await asyncio.sleep(0.2)

        await _with_log(settings, tail)

    _run(main)


@app.command()
def track(
    username: Annotated[str, typer.Argument(help="A Lichess player (who is playing now).")],
    speech: Annotated[bool, typer.Option(help="Ask for spoken commentary too.")] = False,
) -> None:
    """Follow a player's ongoing Lichess game and print its commentary, line by line."""
    from kibitz.domain.players import check_username
    from kibitz.events import CommentaryPublished, decode
    from kibitz.runtime.bootstrap import bootstrap
    from kibitz.services.tracker import request_tracking

    settings = _settings()
    settings.demo = False
    try:
        name = check_username(username)
    except InvalidInput as exc:
        raise _fail(exc.detail) from None
    colours = {"Inaccuracy": "cyan", "Mistake": "yellow", "Blunder": "bold red"}

    async def main() -> str:
        container = bootstrap(settings.model_copy(update={"cpu_workers": 0}))
        # Embedded: this process runs the tracker and the commentary itself.
        await container.start([] if settings.bus_is_kafka else ["tracker", "commentary"])
        try:
            log_ = container.ctx.event_log
            positions = await log_.end_offsets(topics.COMMENTARY)  # from now on
            asked_at = datetime.now(UTC)
            started = await request_tracking(
                container.ctx, container.component("tracker"), name, {"speech": speech}
            )
            err.print(f"{name}: {started['status'].replace('_', ' ')} (Ctrl-C stops)")
            key = name.lower()
            while True:
                for partition, offset in positions.items():
                    for record in await log_.read(topics.COMMENTARY, partition, offset, 200):
                        positions[partition] = record.offset + 1
                        _, line = decode(record.value)
                        if not isinstance(line, CommentaryPublished):
                            continue
                        if key in {(line.white or "").lower(), (line.black or "").lower()}:
                            style = colours.get(line.judgment or "")
                            console.print(line.text, style=style, highlight=False)
                ended_at, why = await container.reader.tracking_ended(key)
                if ended_at is not None and ended_at.replace(tzinfo=UTC) >= asked_at:
                    return why or "ended"
                await asyncio.sleep(0.3)
        finally:
            await container.close()

    reason = _run(main)
    err.print(f"tracking {name} ended: {reason}")


def _parse_since(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"--since {value!r} is not a date (YYYY-MM-DD)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


async def _follow_sync(container: Any, sync_id: str, label: str) -> dict[str, Any]:
    started = time.monotonic()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[stored]} stored · {task.fields[rate]:.1f} games/s"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as progress:
        task = progress.add_task(label, total=None, stored=0, rate=0.0)
        while True:
            view = await container.reader.sync(sync_id)
            elapsed = max(0.001, time.monotonic() - started)
            total = view["games_received"] if view["status"] in ("done", "storing") else None
            progress.update(
                task,
                total=total,
                completed=view["accounted"],
                stored=view["games_stored"],
                rate=view["games_stored"] / elapsed,
            )
            if view["status"] in ("done", "failed"):
                return dict(view)
            await asyncio.sleep(0.2)


def _local_services(settings: Settings) -> list[str]:
    # Embedded: this process runs the ingest and store services itself. Distributed: they run
    # as their own processes and this command only asks and watches.
    return [] if settings.bus_is_kafka else ["ingest", "store"]


@import_app.command("lichess")
def import_lichess(
    username: Annotated[str, typer.Argument(help="Lichess username.")],
    max_games: Annotated[int | None, typer.Option("--max", help="At most this many games.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only games since this date (YYYY-MM-DD).")
    ] = None,
) -> None:
    """Import a player's games from Lichess, with a progress bar."""
    from kibitz.runtime.bootstrap import bootstrap
    from kibitz.services.ingest import request_sync

    settings = _settings()
    settings.demo = False
    if max_games is not None and max_games < 1:
        raise _fail("--max must be at least 1")

    async def main() -> dict[str, Any]:
        since_ms = _parse_since(since)
        container = bootstrap(settings)
        await container.start(_local_services(settings))
        try:
            sync_id = await request_sync(
                container.ctx, username, max_games=max_games, since_ms=since_ms
            )
            return await _follow_sync(container, sync_id, f"{username} from Lichess")
        finally:
            await container.close()

    view = _run(main)
    if view["status"] == "failed":
        raise _fail(view["error"] or "the sync failed")
    console.print(
        f"{view['games_stored']} games stored ({view['games_new']} new, "
        f"{view['games_rejected']} rejected) for {username}"
    )


@import_app.command("pgn")
def import_pgn_cmd(
    files: Annotated[list[Path], typer.Argument(help="PGN files.", exists=False)],
) -> None:
    """Import PGN files of one or many games; broken games are reported by index and reason."""
    from kibitz.runtime.bootstrap import bootstrap
    from kibitz.services.ingest import import_pgn

    settings = _settings()
    settings.demo = False
    for path in files:
        if not path.is_file():
            raise _fail(f"no such file: {path}")

    async def main() -> list[dict[str, Any]]:
        container = bootstrap(settings)
        await container.start(_local_services(settings))
        views = []
        try:
            for path in files:
                text = path.read_text(encoding="utf-8-sig", errors="replace")
                import_id = await import_pgn(container.ctx, text, filename=path.name)
                views.append(await _follow_sync(container, import_id, path.name))
        finally:
            await container.close()
        return views

    views = _run(main)
    for path, view in zip(files, views, strict=True):
        console.print(
            f"{path.name}: {view['games_stored']} stored ({view['games_new']} new), "
            f"{view['games_rejected']} rejected"
        )
        for rejection in view["rejected"]:
            console.print(f"  game {rejection['index']}: {rejection['reason']}", highlight=False)


@app.command()
def analyze(
    game_ids: Annotated[list[str] | None, typer.Argument(help="Game ids.")] = None,
    player: Annotated[
        str | None, typer.Option("--player", help="Every not yet analysed game of this player.")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the results, with a progress bar.")] = False,
    batch: Annotated[
        bool, typer.Option("--batch", help="Queue in the batch lane (default: interactive).")
    ] = False,
    force: Annotated[bool, typer.Option(help="Analyse again games already analysed.")] = False,
) -> None:
    """Analyse games with Stockfish: a quick pass, then a deep pass, then the plugins."""
    from kibitz.runtime.bootstrap import bootstrap
    from kibitz.services.analysis import request_analysis, request_player_analysis

    if bool(game_ids) == bool(player):
        raise _fail("give game ids or --player USERNAME (one of the two)")
    if force and player:
        raise _fail("--force applies to game ids; --player queues games not analysed yet")
    settings = _settings()
    settings.demo = False
    lane = "batch" if batch or player else "interactive"

    async def main() -> tuple[int, dict[str, str]]:
        container = bootstrap(settings)
        # Embedded and waiting: this process analyses (alongside a running `serve`, if any).
        local = ["analysis"] if wait and not settings.bus_is_kafka else []
        await container.start(local)
        try:
            if player:
                queued = await request_player_analysis(container.ctx, player, lane)
                # Waits for every game of theirs still queued or running, these and earlier.
                ids = await _analysis_ids(container, player) if wait else []
            else:
                ids = list(dict.fromkeys(game_ids or []))
                for game_id in ids:
                    await request_analysis(container.ctx, game_id, lane, force=force)
                queued = len(ids)
            if not wait:
                return queued, {}
            return queued, await _follow_analyses(container, ids)
        finally:
            await container.close()

    queued, outcome = _run(main)
    if not wait:
        console.print(f"{queued} game{'s' if queued != 1 else ''} queued in the {lane} lane")
        return
    failed = {g: s for g, s in outcome.items() if s != "done"}
    console.print(f"{len(outcome) - len(failed)} analysed, {len(failed)} failed")
    for game_id, why in failed.items():
        console.print(f"  {game_id}: {why}", highlight=False)
    if failed:
        raise typer.Exit(1)


async def _analysis_ids(container: Any, player: str) -> list[str]:
    return list(await container.reader.analyses_pending(player))


async def _follow_analyses(container: Any, ids: list[str]) -> dict[str, str]:
    """Poll the games' analyses until each is done or failed; returns status or error by id."""
    outcome: dict[str, str] = {}
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[done]}/{task.fields[games]} games · {task.fields[now]}"),
        TimeElapsedColumn(),
        console=err,
    ) as progress:
        task = progress.add_task(
            "analysis",
            total=2 * len(ids),
            done=0,
            games=len(ids),
            now="",
        )
        while len(outcome) < len(ids):
            completed, now = 0.0, "queued"
            for game_id in ids:
                view = await container.reader.analysis(game_id, with_evals=False)
                status, phase = view["status"], view["phase"]
                if status == "done":
                    outcome[game_id] = "done"
                    completed += 2
                elif status == "failed":
                    outcome[game_id] = view["error"] or "failed"
                    completed += 2
                elif status == "running":
                    completed += (1 if phase == "deep" else 0) + view["progress"]
                    now = f"{game_id} {phase} {view['positions_done']}/{view['positions_total']}"
            progress.update(task, completed=completed, done=len(outcome), now=now)
            if len(outcome) < len(ids):
                await asyncio.sleep(0.3)
    return outcome


@app.command()
def report(username: Annotated[str, typer.Argument(help="A player's username.")]) -> None:
    """A player's summary over their analysed games: accuracy, errors, weakest openings."""
    from kibitz.runtime.bootstrap import bootstrap

    settings = _settings()
    settings.demo = False

    async def main() -> dict[str, Any]:
        container = bootstrap(settings)
        await container.start([])
        try:
            return await container.reader.player_report(username)
        finally:
            await container.close()

    data = _run(main)
    table = Table(title=f"{username}: {data['analysed']} of {data['games']} games analysed")
    table.add_column("games")
    table.add_column("accuracy")
    table.add_column("ACPL")
    table.add_column("inaccuracies / game")
    table.add_column("mistakes / game")
    table.add_column("blunders / game")
    per = data["per_game"]

    def cell(v: Any) -> str:
        return "-" if v is None else str(v)

    table.add_row(
        str(data["analysed"]),
        cell(data["accuracy"]),
        cell(data["acpl"]),
        cell(per["inaccuracy"]),
        cell(per["mistake"]),
        cell(per["blunder"]),
    )
    console.print(table)
    if data["worst_openings"]:
        worst = Table(title="weakest openings (lowest accuracy)")
        worst.add_column("opening")
        worst.add_column("games")
        worst.add_column("accuracy")
        for o in data["worst_openings"]:
            worst.add_row(o["opening"], str(o["games"]), cell(o["accuracy"]))
        console.print(worst)
    elif not data["analysed"]:
        console.print(
            f"no game of {username} is analysed yet: `kibitz analyze --player {username}`"
        )


@problems_app.command("generate")
def problems_generate(
    player: Annotated[
        str | None, typer.Option("--player", help="This player's games (default: every game).")
    ] = None,
    wait: Annotated[
        bool, typer.Option(help="Analyse and search here and now, with a progress bar.")
    ] = False,
) -> None:
    """Search games for puzzles; games not analysed yet are analysed first."""
    from kibitz.runtime.bootstrap import bootstrap
    from kibitz.services.problems import request_generation

    settings = _settings()
    settings.demo = False

    async def main() -> tuple[dict[str, Any], dict[str, Any] | None]:
        container = bootstrap(settings)
        local = ["analysis", "problems"] if wait and not settings.bus_is_kafka else []
        await container.start(local)
        try:
            accepted = await request_generation(container.ctx, player)
            if not wait:
                return accepted, None
            await _follow_generation(container, player)
            return accepted, await container.reader.problem_pool(player)
        finally:
            await container.close()

    accepted, pool = _run(main)
    who = player or "every player"
    if pool is None:
        console.print(
            f"puzzle search requested for {who}: {accepted['games_to_search']} analysed games "
            f"to search, {accepted['games_queued_for_analysis']} queued for analysis first"
        )
        return
    console.print(f"{pool['total']} puzzles for {who}, {pool['never_served']} never served")


async def _follow_generation(container: Any, player: str | None) -> None:
    """Until every game of the player is analysed and searched: a progress bar."""

    with Progress(
        TextColumn("[bold]puzzle search"),
        BarColumn(),
        TextColumn(
            "{task.fields[searched]}/{task.fields[games]} games · {task.fields[found]} puzzles"
        ),
        TimeElapsedColumn(),
        console=err,
    ) as progress:
        task = progress.add_task("search", total=None, searched=0, games="?", found=0)
        while True:
            searched, waiting = await container.reader.search_progress(player)
            pool = await container.reader.problem_pool(player)
            progress.update(
                task,
                total=searched + waiting,
                completed=searched,
                searched=searched,
                games=searched + waiting,
                found=pool["total"],
            )
            if waiting == 0:
                return
            await asyncio.sleep(0.5)


@problems_app.command("pool")
def problems_pool(
    player: Annotated[str | None, typer.Option("--player", help="This player's games.")] = None,
) -> None:
    """The puzzle pool: totals, never served, by theme."""
    from kibitz.runtime.bootstrap import bootstrap

    settings = _settings()
    settings.demo = False

    async def main() -> dict[str, Any]:
        container = bootstrap(settings)
        await container.start([])
        try:
            return await container.reader.problem_pool(player)
        finally:
            await container.close()

    pool = _run(main)
    console.print(
        f"{pool['total']} puzzles, {pool['never_served']} never served "
        f"({pool['games_searched']} games searched, {pool['games_to_search']} waiting)"
    )
    table = Table()
    table.add_column("theme")
    table.add_column("puzzles", justify="right")
    table.add_column("never served", justify="right")
    for theme, counts in pool["by_theme"].items():
        table.add_row(theme, str(counts["total"]), str(counts["never_served"]))
    console.print(table)


@replay_app.command("match")
def replay_match(match_id: Annotated[str, typer.Argument(help="The match's id.")]) -> None:
    """Fold the match's events from the log alone and compare with the stored state."""
    from kibitz import topics
    from kibitz.events import decode
    from kibitz.runtime.bootstrap import bootstrap
    from kibitz.services.matches import replay

    settings = _settings()
    settings.demo = False

    async def main() -> tuple[int, Any, Any]:
        container = bootstrap(settings)
        await container.start([])
        try:
            log = container.ctx.event_log
            events = []
            for partition, end in sorted((await log.end_offsets(topics.MATCH_EVENTS)).items()):
                offset = 0
                while offset < end:
                    records = await log.read(topics.MATCH_EVENTS, partition, offset, 500)
                    if not records:
                        break
                    for record in records:
                        if record.key == match_id:
                            _, payload = decode(record.value)
                            events.append(payload)
                    offset = records[-1].offset + 1
            stored = await container.reader.stored_match(match_id)
            return len(events), replay(events), stored
        finally:
            await container.close()

    count, rebuilt, stored = _run(main)
    if count == 0:
        raise _fail(f"no events of match {match_id!r} in the log")
    if rebuilt == stored:
        console.print(f"replayed {count} events of match {match_id}: equal to the stored state")
        return
    console.print(f"replayed {count} events of match {match_id}: DIFFERENT from the stored state")
    for key in sorted(set(rebuilt or {}) | set(stored or {})):
        if (rebuilt or {}).get(key) != (stored or {}).get(key):
            console.print(
                f"  {key}: log {(rebuilt or {}).get(key)!r} != store {(stored or {}).get(key)!r}"
            )
    raise typer.Exit(1)


def main() -> None:
    try:
        app()
    except KibitzError as exc:
        err.print(f"[bold red]error:[/] {exc.detail}", highlight=False, soft_wrap=True)
        sys.exit(CLI_EXIT_USAGE)
