"""`python -m tests.fakes.s3server PORT` (from a checkout): an S3-protocol server on
127.0.0.1:PORT, in memory, for a local broker's log.

Only what the broker's S3 client (the Rust `object_store` crate, in Tansu) sends: buckets,
objects put, read, probed and deleted, conditional writes (`If-None-Match: *` to create,
`If-Match: ETAG` to replace: 412 when the condition fails, as S3 answers), conditional and
ranged reads, copies, and ListObjectsV2 with prefix, delimiter and continuation. Listings give
`LastModified` to the microsecond: Tansu finds a partition's newest segment by it, and S3
itself keeps more than whole seconds.

Written for the tests rather than taken from moto's S3 server (which it replaced): moto spent
about 4 ms of CPU per request and answered some concurrent conditional writes with a 500,
where this one holds every object under one lock and answers each request in a fraction of it.
Anything else gets a 501 naming the request, so that a broker needing more fails loudly.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_KEYS = 1000


@dataclass(frozen=True)
class Stored:
    body: bytes
    etag: str  # with its quotes, as S3 sends it
    modified: datetime
    content_type: str


@dataclass
class Store:
    lock: threading.Lock = field(default_factory=threading.Lock)
    buckets: dict[str, dict[str, Stored]] = field(default_factory=dict)
    last: datetime = field(default_factory=lambda: datetime.fromtimestamp(0, UTC))

    def now(self) -> datetime:
        """Strictly increasing, so that no two writes share a LastModified (held under lock)."""
        now = datetime.now(UTC)
        if now <= self.last:
            now = self.last + timedelta(microseconds=1)
        self.last = now
        return now


STORE = Store()


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _etag(body: bytes) -> str:
    return f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'


def _matches(condition: str, etag: str) -> bool:
    return any(tag.strip() in ("*", etag) for tag in condition.split(","))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the broker's client reuses its connections
    server_version = "kibitz-test-s3"

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per request would cost more than the request

    # -- plumbing ---------------------------------------------------------------------------
    def _target(self) -> tuple[str, str, dict[str, list[str]]]:
        parts = urlsplit(self.path)
        path = parts.path.lstrip("/")
        bucket, _, key = path.partition("/")
        return unquote(bucket), unquote(key), parse_qs(parts.query, keep_blank_values=True)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str) -> None:
        xml = (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message></Error>"
        )
        self._send(status, xml.encode(), {"Content-Type": "application/xml"})

    def _unsupported(self) -> None:
        print(f"unsupported request: {self.command} {self.path}", file=sys.stderr, flush=True)
        self._error(501, "NotImplemented", f"{self.command} {self.path}")

    def _object_headers(self, obj: Stored) -> dict[str, str]:
        return {
            "ETag": obj.etag,
            "Last-Modified": format_datetime(obj.modified, usegmt=True),
            "Content-Type": obj.content_type,
            "Accept-Ranges": "bytes",
        }

    # -- verbs ------------------------------------------------------------------------------
    def do_PUT(self) -> None:
        bucket, key, query = self._target()
        body = self._body()
        with STORE.lock:
            if not key:
                STORE.buckets.setdefault(bucket, {})
                return self._send(200, headers={"Location": f"/{bucket}"})
            objects = STORE.buckets.get(bucket)
            if objects is None:
                return self._error(404, "NoSuchBucket", bucket)
            if query:
                return self._unsupported()  # multipart parts and the like
            source = self.headers.get("x-amz-copy-source")
            if source:
                src_bucket, _, src_key = unquote(source.split("?")[0].lstrip("/")).partition("/")
                original = STORE.buckets.get(src_bucket, {}).get(src_key)
                if original is None:
                    return self._error(404, "NoSuchKey", src_key)
                body = original.body
            current = objects.get(key)
            if_none = self.headers.get("If-None-Match")
            if_match = self.headers.get("If-Match")
            if if_none is not None and current is not None and _matches(if_none, current.etag):
                return self._error(412, "PreconditionFailed", "If-None-Match")
            if if_match is not None and (current is None or not _matches(if_match, current.etag)):
                return self._error(412, "PreconditionFailed", "If-Match")
            stored = Stored(
                body,
                _etag(body),
                STORE.now(),
                self.headers.get("Content-Type") or "application/octet-stream",
            )
            objects[key] = stored
        if source:
            xml = (
                f'<?xml version="1.0" encoding="UTF-8"?><CopyObjectResult><LastModified>'
                f"{_iso(stored.modified)}</LastModified><ETag>{escape(stored.etag)}</ETag>"
                "</CopyObjectResult>"
            )
            return self._send(200, xml.encode(), {"Content-Type": "application/xml"})
        self._send(200, headers={"ETag": stored.etag})

    def do_GET(self) -> None:
        bucket, key, query = self._target()
        if not key:
            return self._list(bucket, query)
        with STORE.lock:
            obj = STORE.buckets.get(bucket, {}).get(key)
        if obj is None:
            return self._error(404, "NoSuchKey", key)
        headers = self._object_headers(obj)
        if_none = self.headers.get("If-None-Match")
        if if_none is not None and _matches(if_none, obj.etag):
            return self._send(304, headers={"ETag": obj.etag})
        if_match = self.headers.get("If-Match")
        if if_match is not None and not _matches(if_match, obj.etag):
            return self._error(412, "PreconditionFailed", "If-Match")
        ranged = self.headers.get("Range")
        if ranged:
            first, last = self._range(ranged, len(obj.body))
            if first > last:
                return self._error(416, "InvalidRange", ranged)
            headers["Content-Range"] = f"bytes {first}-{last}/{len(obj.body)}"
            return self._send(206, obj.body[first : last + 1], headers)
        self._send(200, obj.body, headers)

    do_HEAD = do_GET  # the same headers, no body: `_send` leaves it out

    @staticmethod
    def _range(header: str, size: int) -> tuple[int, int]:
        spec = header.split("=", 1)[1].split(",")[0].strip()
        start, _, end = spec.partition("-")
        if not start:  # the last N bytes
            return max(0, size - int(end)), size - 1
        return int(start), min(size - 1, int(end)) if end else size - 1

    def do_DELETE(self) -> None:
        bucket, key, _ = self._target()
        with STORE.lock:
            STORE.buckets.get(bucket, {}).pop(key, None)
        self._send(204)

    def do_POST(self) -> None:
        self._body()
        self._unsupported()  # multipart uploads, batch deletes: not used by the broker

    def _list(self, bucket: str, query: dict[str, list[str]]) -> None:
        def one(name: str, default: str = "") -> str:
            return query.get(name, [default])[0]

        if one("list-type") != "2":
            return self._unsupported()
        prefix, delimiter = one("prefix"), one("delimiter")
        after = one("continuation-token") or one("start-after")
        limit = min(int(one("max-keys", str(MAX_KEYS)) or MAX_KEYS), MAX_KEYS)
        with STORE.lock:
            objects = STORE.buckets.get(bucket)
            if objects is None:
                return self._error(404, "NoSuchBucket", bucket)
            keys = sorted(k for k in objects if k.startswith(prefix) and k > after)
            entries: list[tuple[str, Stored | None]] = []  # (key, object) or (common prefix, None)
            prefixes: set[str] = set()
            truncated = False
            for k in keys:
                if delimiter and after.endswith(delimiter) and k.startswith(after):
                    continue  # inside the common prefix the previous page ended with
                if len(entries) == limit:
                    truncated = True
                    break
                if delimiter and delimiter in k[len(prefix) :]:
                    common = k[: k.index(delimiter, len(prefix)) + len(delimiter)]
                    if common not in prefixes:
                        prefixes.add(common)
                        entries.append((common, None))
                    continue
                entries.append((k, objects[k]))
        parts = [
            f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="{XMLNS}">',
            f"<Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix>",
            f"<KeyCount>{len(entries)}</KeyCount><MaxKeys>{limit}</MaxKeys>",
            f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>",
        ]
        if delimiter:
            parts.append(f"<Delimiter>{escape(delimiter)}</Delimiter>")
        if truncated and entries:
            parts.append(f"<NextContinuationToken>{escape(entries[-1][0])}</NextContinuationToken>")
        for name, obj in entries:
            if obj is None:
                parts.append(f"<CommonPrefixes><Prefix>{escape(name)}</Prefix></CommonPrefixes>")
            else:
                parts.append(
                    f"<Contents><Key>{escape(name)}</Key><LastModified>{_iso(obj.modified)}"
                    f"</LastModified><ETag>{escape(obj.etag)}</ETag><Size>{len(obj.body)}</Size>"
                    "<StorageClass>STANDARD</StorageClass></Contents>"
                )
        parts.append("</ListBucketResult>")
        self._send(200, "".join(parts).encode(), {"Content-Type": "application/xml"})


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: python -m tests.fakes.s3server PORT", file=sys.stderr)
        return 2
    server = ThreadingHTTPServer(("127.0.0.1", int(argv[0])), Handler)
    server.daemon_threads = True
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
