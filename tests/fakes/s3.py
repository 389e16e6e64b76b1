"""A fake S3 for the tests (and try-outs from a checkout): tests/fakes/s3server.py on 127.0.0.1,
in its own process, where a local broker keeps a log that outlives the broker."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from kibitz.runtime.cluster import free_port, terminate, wait_listening

ROOT = Path(__file__).parent.parent.parent  # the checkout: `tests` is importable from here


@dataclass
class LocalS3:
    """An S3-protocol server on 127.0.0.1 (tests/fakes/s3server.py, in its own process)
    holding one bucket. It keeps objects in memory: they outlive the broker that writes them,
    not this process."""

    port: int
    bucket: str
    process: subprocess.Popen[bytes]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def storage(self) -> str:
        """The broker's `--storage-engine` for this bucket."""
        return f"s3://{self.bucket}/"

    def broker_env(self) -> dict[str, str]:
        """What Tansu's S3 client reads to reach this server (no credentials are checked)."""
        return {
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "kibitz",
            "AWS_SECRET_ACCESS_KEY": "kibitz",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def stop(self) -> None:
        terminate(self.process)


def start_s3(log_dir: Path, bucket: str = "kibitz", timeout: float = 30.0) -> LocalS3:
    """Start `python -m tests.fakes.s3server` (an in-memory S3 server) and
    create `bucket` in it."""
    import sys

    import httpx

    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"s3-{port}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.s3server", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )
    wait_listening(process, port, log_path, "S3 server", timeout)
    store = LocalS3(port, bucket, process)
    created = httpx.put(f"{store.endpoint}/{bucket}", timeout=10)
    if created.status_code != 200:
        store.stop()
        raise RuntimeError(f"cannot create bucket {bucket}: HTTP {created.status_code}")
    return store
