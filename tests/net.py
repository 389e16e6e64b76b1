"""httpx's one-call functions (`get`, `post`, ...), each on a new client as httpx's own, but
with the process's one TLS context: httpx builds a context per client, loading the whole CA
bundle (about 25 ms of CPU), and the suite's polling loops make thousands of calls."""

from __future__ import annotations

from typing import Any

import httpx

from kibitz.tls import tls_context


def get(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(url, verify=tls_context(), **kwargs)


def post(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(url, verify=tls_context(), **kwargs)


def request(method: str, url: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, url, verify=tls_context(), **kwargs)


def stream(method: str, url: str, **kwargs: Any) -> Any:
    return httpx.stream(method, url, verify=tls_context(), **kwargs)
