"""Sign-in for browsers (see kibitz.api.session): the token once, then a session cookie."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from kibitz.api import session
from kibitz.api.deps import container
from kibitz.api.guard import token_matches
from kibitz.errors import Unauthorized
from kibitz.read import models
from kibitz.runtime.bootstrap import Container

router = APIRouter(prefix="/api/session", tags=["session"])


class SignIn(BaseModel):
    token: str = Field("", max_length=512, description="the API token (or send it as Bearer)")


def _https(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.url.scheme == "https" or forwarded.split(",")[0].strip() == "https"


def _state(request: Request, token: str | None) -> dict[str, Any]:
    if not token:
        return {"signed_in": True, "token_required": False}
    headers = {k.lower(): v for k, v in request.headers.items()}
    by_cookie = session.signed_in(headers, token, write=False)
    by_bearer = token_matches(headers.get("authorization", ""), token)
    return {"signed_in": by_cookie or by_bearer, "token_required": True}


@router.get("", response_model=models.Session)
async def current(request: Request, app: Container = Depends(container)) -> dict[str, Any]:
    """Whether this browser is signed in, and whether writes need it at all."""
    return _state(request, app.settings.api_token)


@router.post("", response_model=models.Session)
async def sign_in(
    request: Request,
    response: Response,
    body: SignIn | None = None,
    app: Container = Depends(container),
) -> dict[str, Any]:
    """Check the token (in the body, or as Bearer) and start a session: an HttpOnly,
    SameSite=Strict cookie (Secure over HTTPS) and the CSRF value writes must repeat."""
    token = app.settings.api_token
    if not token:
        return {"signed_in": True, "token_required": False}
    given = body.token if body is not None and body.token else ""
    bearer = token_matches(request.headers.get("authorization", ""), token)
    if not bearer and not hmac.compare_digest(given.encode(), token.encode()):
        raise Unauthorized("wrong token")
    value, csrf = session.new_session(token)
    secure = _https(request)
    age = session.SESSION_SECONDS
    response.set_cookie(
        session.SESSION_COOKIE, value, max_age=age, httponly=True, samesite="strict", secure=secure
    )
    response.set_cookie(
        session.CSRF_COOKIE, csrf, max_age=age, httponly=False, samesite="strict", secure=secure
    )
    return {"signed_in": True, "token_required": True}


@router.delete("", response_model=models.Session)
async def sign_out(response: Response, app: Container = Depends(container)) -> dict[str, Any]:
    """End this browser's session (its cookies are cleared)."""
    response.delete_cookie(session.SESSION_COOKIE, httponly=True, samesite="strict")
    response.delete_cookie(session.CSRF_COOKIE, samesite="strict")
    return {"signed_in": not app.settings.api_token, "token_required": bool(app.settings.api_token)}
