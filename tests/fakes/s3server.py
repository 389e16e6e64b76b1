"""`python -m tests.fakes.s3server PORT` (from a checkout): an S3-protocol server on
127.0.0.1:PORT for a local broker's log.

moto's S3 server (the `moto[server]` test dependency) with one correction: its object listings
round `LastModified` down to the second, where S3 itself keeps milliseconds. Tansu's S3 storage
finds a partition's newest segment by `LastModified`, so with whole seconds every batch written
in the same second ties, and ListOffsets answers an end offset from the middle of the log
(seen here: 1 for a partition holding 10 records). Listing the time to the microsecond, as
moto stores it, restores what S3 gives.
"""

from __future__ import annotations

import sys
from datetime import datetime


def _precise(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _serialize_precisely(self: object, value: datetime) -> str:
    return _precise(value)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: python -m tests.fakes.s3server PORT", file=sys.stderr)
        return 2
    try:
        from moto.core.serialize import TimestampSerializer
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from moto.s3 import models
        from werkzeug.serving import run_simple
    except ImportError:
        print("the local S3 store needs `pip install 'moto[server]'`", file=sys.stderr)
        return 2
    # Both paths by which a listing formats LastModified.
    TimestampSerializer._timestamp_iso8601_zeroed = _serialize_precisely  # type: ignore[method-assign]
    models.FakeKey.last_modified_ISO8601 = property(lambda key: _precise(key.last_modified))  # type: ignore[method-assign,assignment]
    app = DomainDispatcherApplication(create_backend_app)
    run_simple("127.0.0.1", int(argv[0]), app, threaded=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
