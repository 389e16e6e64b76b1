"""Who holds a lease: one owner format for every lease kibitz takes."""

from __future__ import annotations

import os
import socket
import uuid


def process_owner() -> str:
    """host:pid:random — unique per taker, and says where the holder runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
