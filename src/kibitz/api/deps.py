"""FastAPI dependencies: the container, the write-token check."""

from __future__ import annotations

import hmac
from typing import cast

from fastapi import Request

from kibitz.errors import Unauthorized
from kibitz.runtime.bootstrap import Container
from kibitz.services.context import Context


def container(request: Request) -> Container:
    return cast(Container, request.app.state.container)


def context(request: Request) -> Context:
    return container(request).ctx


def require_write_token(request: Request) -> None:
    """Write endpoints need `Authorization: Bearer KIBITZ_API_TOKEN` when a token is set."""
    token = container(request).settings.api_token
    if not token:
        return
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise Unauthorized("this endpoint needs the API token (Authorization: Bearer …)")
