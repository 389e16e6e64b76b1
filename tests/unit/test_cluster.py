"""`kibitz down` and `restart` judge a process stopped by whether it still runs, not by whether
its parent has collected it: a child of another process (a test, `kibitz restart`, an init that
does not reap) that has exited is a zombie until then."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from kibitz.runtime.cluster import _alive, _zombie, start_time


def test_an_exited_child_nobody_collected_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        while not _zombie(child.pid):  # exited, not yet collected by us, its parent
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.01)
        os.kill(child.pid, 0)  # the kernel still knows the pid, but it runs no more
        assert _alive(child.pid) is False
    finally:
        child.wait(5)


def test_a_running_process_is_alive_and_no_zombie() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert _zombie(child.pid) is False
        assert _alive(child.pid) is True
    finally:
        child.kill()
        child.wait(5)
    assert _alive(child.pid) is False


def test_a_pid_held_by_another_process_is_not_the_one_recorded() -> None:
    """The kernel reuses pids (pid_max is often 32768): `kibitz down` must not signal the
    process that got a dead one's pid, so processes are known by pid and start time."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = start_time(child.pid)
        assert started is not None
        assert _alive(child.pid, started) is True
        assert _alive(child.pid, started + 1) is False  # as if the pid were another's now
        assert child.poll() is None  # and it was left alone
    finally:
        child.kill()
        child.wait(5)
