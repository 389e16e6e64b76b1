"""What an idle embedded `kibitz serve` costs: CPU seconds per second of wall time, with no
request and no work, once it has started (every service running, its consumers polling the
embedded log). A laptop or a small server keeps it running all day.

    .venv/bin/python bench/idle.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from tests import net

from kibitz.runtime.cluster import free_port


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="kibitz-idle-"))
    port = free_port()
    env = {**os.environ, "KIBITZ_HOME": str(home), "KIBITZ_PORT": str(port), "KIBITZ_DEMO": "false"}
    kibitz = str(Path(sys.executable).parent / "kibitz")
    log = (home / "serve.log").open("wb")
    server = subprocess.Popen([kibitz, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if net.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"kibitz serve did not start: see {home / 'serve.log'}")
            time.sleep(0.1)
        time.sleep(5)  # settled: start-up work done
        before, began = cpu_seconds(server.pid), time.monotonic()
        time.sleep(args.seconds)
        used = cpu_seconds(server.pid) - before
        wall = time.monotonic() - began
    finally:
        server.terminate()
        server.wait(30)
    print(f"idle kibitz serve: {used / wall:.4f} CPU-seconds per second over {wall:.0f} s")


if __name__ == "__main__":
    main()
