"""Browser sign-in: the API token, given once on the sign-in page, becomes a session cookie.

- `kibitz_session` (HttpOnly, SameSite=Strict, Secure over HTTPS): when it was issued and an
  HMAC of that time under the API token, so changing the token ends every session and the
  server keeps no session state; it lasts SESSION_DAYS.
- `kibitz_csrf` (readable by the page's scripts): a random value that every write made with the
  session cookie must repeat in the `X-CSRF-Token` header (double submit).

Scripts keep using `Authorization: Bearer <token>`, which needs neither.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SESSION_COOKIE = "kibitz_session"
CSRF_COOKIE = "kibitz_csrf"
CSRF_HEADER = "x-csrf-token"
SESSION_DAYS = 30
SESSION_SECONDS = SESSION_DAYS * 24 * 3600


def _mac(token: str, issued: str) -> str:
    return hmac.new(token.encode(), f"kibitz-session:{issued}".encode(), hashlib.sha256).hexdigest()


def new_session(token: str, now: float | None = None) -> tuple[str, str]:
    """(session cookie value, CSRF value) for a browser that gave `token`."""
    issued = str(int(now if now is not None else time.time()))
    return f"{issued}.{_mac(token, issued)}", secrets.token_urlsafe(24)


def session_valid(value: str, token: str, now: float | None = None) -> bool:
    issued, _, mac = value.partition(".")
    if not issued.isdigit() or not mac:
        return False
    age = (now if now is not None else time.time()) - int(issued)
    return 0 <= age <= SESSION_SECONDS and hmac.compare_digest(mac, _mac(token, issued))


def cookies(header: str) -> dict[str, str]:
    """The request's `Cookie` header as a dict (the last of a repeated name wins)."""
    out: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            out[name] = value
    return out


def signed_in(headers: dict[str, str], token: str, *, write: bool) -> bool:
    """Whether the request carries a valid session, and for a write the matching CSRF value."""
    jar = cookies(headers.get("cookie", ""))
    if not session_valid(jar.get(SESSION_COOKIE, ""), token):
        return False
    if not write:
        return True
    csrf = jar.get(CSRF_COOKIE, "")
    return bool(csrf) and hmac.compare_digest(headers.get(CSRF_HEADER, ""), csrf)
