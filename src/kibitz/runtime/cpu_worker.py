"""What runs first in a worker process of the CPU pool. Kept to the standard library: a
worker imports this module before its first task, and the modules of its tasks after."""

from __future__ import annotations

import os
import threading
import time


def exit_with_parent(parent_pid: int) -> None:
    """In a worker process: exit as soon as the process that started it is gone (a SIGKILLed
    parent cannot shut its pool down)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
