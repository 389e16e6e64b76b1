"""One place mapping errors to HTTP answers: JSON `{"error": code, "detail": message}`."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from kibitz.errors import KibitzError, StorageFull, is_storage_full

log = logging.getLogger("kibitz.api")


class ErrorBody(BaseModel):
    """Every error answer: a machine-readable code and a sentence for people."""

    error: str
    detail: str


# What any endpoint may answer besides its success: documented once, for every route.
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "Bad request",
        401: "The API token is missing or wrong (when KIBITZ_API_TOKEN is set)",
        404: "No such resource",
        405: "Method not allowed",
        409: "Conflicts with the current state",
        413: "The body is over the limit",
        422: "Invalid input",
        503: "A component kibitz depends on is unavailable",
        507: "The store's disk is full",
    }.items()
}


def install(app: FastAPI) -> None:
    @app.exception_handler(KibitzError)
    async def kibitz_error(_: Request, exc: KibitzError) -> JSONResponse:
        return JSONResponse({"error": exc.code, "detail": exc.detail}, status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "request"
        return JSONResponse(
            {"error": "invalid_input", "detail": f"{where}: {first.get('msg')}"}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse({"error": code, "detail": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        # Still JSON: a full disk anywhere (the event log's too) is 507, anything else 500.
        if is_storage_full(exc):
            full = StorageFull("the disk is full; writes resume when there is space")
            return JSONResponse({"error": full.code, "detail": full.detail}, status_code=507)
        log.error("request_failed path=%s error=%s", request.url.path, type(exc).__name__)
        return JSONResponse(
            {"error": "internal_error", "detail": f"unexpected {type(exc).__name__}"},
            status_code=500,
        )
