"""One TLS context per process for every HTTP client kibitz makes.

httpx builds a context for each client it creates, loading the whole CA bundle: about 25 ms
of CPU, paid on every call by code that opens a client per call (a health probe, a question
to the tracker process). Built once here with httpx's own defaults (certifi's bundle, or
SSL_CERT_FILE / SSL_CERT_DIR when set), it is shared by every client of the process.
"""

from __future__ import annotations

import functools
import ssl


@functools.cache
def tls_context() -> ssl.SSLContext:
    import httpx  # imported when first needed: the CLI starts without it

    return httpx.create_ssl_context()
