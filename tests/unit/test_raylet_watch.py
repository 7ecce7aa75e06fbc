"""The process standing in for the minimal dashboard agent stays exactly as long as its raylet."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from chainlearn_ray.runtime import raylet_watch

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")


def _watch(**kwargs: object) -> subprocess.Popen[bytes]:
    # started as the raylet starts the agent: the agent's own arguments follow, unused
    return subprocess.Popen([sys.executable, "-S", raylet_watch.__file__, "agent.py",
                             "--node-id=x", "--minimal"], **kwargs)  # type: ignore[call-overload]


def test_stays_while_the_raylet_pipe_is_open_and_ends_with_it() -> None:
    watch = _watch(stdin=subprocess.PIPE)
    try:
        time.sleep(0.5)
        assert watch.poll() is None
        watch.stdin.write(b"anything the raylet might send\n")
        watch.stdin.flush()
        time.sleep(0.2)
        assert watch.poll() is None
        watch.stdin.close()
        assert watch.wait(timeout=10) == 0
    finally:
        watch.kill()
        watch.wait()


def test_without_a_pipe_it_follows_the_raylet_process() -> None:
    raylet = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    watch = _watch(stdin=subprocess.DEVNULL,
                   env={**os.environ, "RAY_RAYLET_PID": str(raylet.pid)})
    try:
        time.sleep(1.5)
        assert watch.poll() is None
        raylet.kill()  # left unreaped for a moment: an exited process counts as gone
        assert watch.wait(timeout=10) == 0
    finally:
        raylet.kill()
        raylet.wait()
        watch.kill()
        watch.wait()


def test_raylet_alive_reads_the_process_table() -> None:
    assert raylet_watch.raylet_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    while child.poll() is None:
        time.sleep(0.01)
    assert not raylet_watch.raylet_alive(child.pid)  # reaped: no such process
