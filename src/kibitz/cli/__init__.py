"""The `kibitz` command line: serve, run services, import, operate the log and the store.
Each area's commands live in their own module; importing them registers them on `app`."""

from __future__ import annotations

import sys

from kibitz.cli import analysis, bus, cluster, games, live, problems, server, training
from kibitz.cli.common import app, err
from kibitz.errors import CLI_EXIT_USAGE, KibitzError

# `kibitz --help` lists the commands in the order people need them.
ORDER = [
    "serve",
    "run",
    "up",
    "down",
    "services",
    "analyze",
    "report",
    "train",
    "track",
    "watchdog",
]
app.registered_commands.sort(
    key=lambda c: ORDER.index(c.name or c.callback.__name__)  # type: ignore[union-attr]
)

__all__ = [
    "analysis",
    "app",
    "bus",
    "cluster",
    "games",
    "live",
    "main",
    "problems",
    "server",
    "training",
]


def main() -> None:
    try:
        app()
    except KibitzError as exc:
        err.print(f"[bold red]error:[/] {exc.detail}", highlight=False, soft_wrap=True)
        sys.exit(CLI_EXIT_USAGE)
