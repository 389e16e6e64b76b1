"""The gate every HTTP request passes before any route reads it: the API token, the body
limit (declared or streamed), and NUL bytes, which no store takes."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kibitz.api.session import signed_in

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
SIGN_IN = "/api/session"  # checks the token itself (it arrives in the body)
# Reads that change state or show what only operators may see.
GUARDED_READS = ("/api/problems/random", "/api/ops/dlq/")


def needs_token(method: str, path: str) -> bool:
    """Whether a request needs the API token (when one is set): every write, and the reads of
    GUARDED_READS."""
    return method not in SAFE_METHODS or path.startswith(GUARDED_READS)


def token_matches(authorization: str, token: str) -> bool:
    """`Authorization: Bearer <token>`: the scheme is required (any case), the token exact."""
    scheme, _, given = authorization.strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def _error(code: str, detail: str, status: int) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


# Answered while the process still starts (waiting for its store or its log): how it is.
ALWAYS_SERVED = ("/api/health", "/health", "/metrics", "/static", "/favicon.ico")


class RequestGuard:
    """Pure ASGI, so that an unauthenticated or oversized upload is refused before its body is
    read: a 401 costs nothing, and a chunked body is cut off at the limit (413)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        body_limit: int,
        starting: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.app = app
        self.token = token
        self.body_limit = body_limit
        self.starting = starting  # what the process still waits for; None once it runs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, self._limited(receive), send)

    def _refusal(self, scope: Scope) -> JSONResponse | None:
        path: str = scope["path"]
        if "\x00" in path:
            return _error("not_found", "no such resource (the path has a NUL byte)", 404)
        if b"%00" in scope.get("query_string", b""):
            return _error("invalid_input", "the query has a NUL byte", 422)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if (
            self.token
            and path != SIGN_IN
            and needs_token(scope["method"], path)
            and not token_matches(headers.get("authorization", ""), self.token)
            and not signed_in(headers, self.token, write=scope["method"] not in SAFE_METHODS)
        ):
            return _error(
                "unauthorized",
                "this endpoint needs the API token (Authorization: Bearer …) or a signed-in "
                "browser (sign in at /signin)",
                401,
            )
        waiting = self.starting()
        if waiting is not None and not path.startswith(ALWAYS_SERVED):
            return _error("unavailable", f"starting: {waiting}", 503)
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.body_limit:
            return _error(
                "payload_too_large",
                f"the body is {int(length)} bytes; the limit is {self.body_limit}",
                413,
            )
        return None

    def _limited(self, receive: Receive) -> Receive:
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message: Any = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.body_limit:
                    raise HTTPException(
                        413, f"the body is over the limit of {self.body_limit} bytes"
                    )
            return dict(message)

        return receive_within_limit
