"""What every command shares: the Typer apps, the consoles, settings, errors and the loop."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from kibitz.errors import CLI_EXIT_USAGE, KibitzError
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


def _with_container(use: Callable[[Any], Awaitable[T]]) -> T:
    """`use(container)` on a started container running no service (a read, a request), then
    closed: what most one-shot commands do."""
    from kibitz.runtime.bootstrap import bootstrap

    settings = _settings()
    settings.demo = False

    async def main() -> T:
        container = bootstrap(settings)
        await container.start([])
        try:
            return await use(container)
        finally:
            await container.close()

    return _run(main)


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr
    )
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # failures are reported by kibitz
    logging.getLogger("alembic").setLevel(logging.WARNING)
