"""FastAPI dependencies: the container and its context (the token is checked by the guard)."""

from __future__ import annotations

from typing import cast

from fastapi import Request

from kibitz.read.reader import Reader
from kibitz.runtime.bootstrap import Container
from kibitz.services.context import Context


def container(request: Request) -> Container:
    return cast(Container, request.app.state.container)


def context(request: Request) -> Context:
    return container(request).ctx


def reader(request: Request) -> Reader:
    """The read side."""
    return container(request).reader
