"""The processes standing in for Ray's agents stay exactly as long as their raylet; the one for
the runtime-env agent becomes that agent when first asked for."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

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


# -------------------------------------------------------------- the runtime-env agent on demand

AGENT = ("import os, sys; open(sys.argv[1], 'w').write(str(os.getpid()))")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _on_demand(marker: str, port: int | None, **kwargs: object) -> subprocess.Popen[bytes]:
    # Ray's command for the agent, as the raylet gets it: python, program, arguments
    command = [sys.executable, "-c", AGENT, marker, "--node-ip-address=127.0.0.1",
               *([f"--runtime-env-agent-port={port}"] if port is not None else [])]
    return subprocess.Popen([sys.executable, "-S", raylet_watch.__file__, "--on-demand",
                             *command], **kwargs)  # type: ignore[call-overload]


def _connect(port: int) -> None:
    """Connect once something listens on ``port`` (a connection reset counts: the listener
    took it and let go)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return
        except ConnectionResetError:
            return
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_on_demand_holds_the_port_and_becomes_the_agent_at_the_first_connection(
        tmp_path: Path) -> None:
    marker, port = tmp_path / "agent", _free_port()
    stand_in = _on_demand(str(marker), port, stdin=subprocess.PIPE)
    try:
        time.sleep(0.5)
        assert stand_in.poll() is None and not marker.exists()
        _connect(port)  # the port takes connections while no agent runs
        time.sleep(0.3)
        # ... and that connection made it run Ray's command, in the same process
        assert stand_in.wait(timeout=10) == 0
        assert marker.read_text() == str(stand_in.pid)
    finally:
        stand_in.kill()
        stand_in.wait()


def test_on_demand_ends_with_the_raylet_without_starting_the_agent(tmp_path: Path) -> None:
    marker, port = tmp_path / "agent", _free_port()
    stand_in = _on_demand(str(marker), port, stdin=subprocess.PIPE)
    try:
        time.sleep(0.5)
        assert stand_in.poll() is None and not marker.exists()
        stand_in.stdin.close()  # the raylet ended
        assert stand_in.wait(timeout=10) == 0
        assert not marker.exists()
    finally:
        stand_in.kill()
        stand_in.wait()


@pytest.mark.parametrize("taken", [False, True])
def test_on_demand_starts_the_agent_at_once_without_a_port_to_hold(
        tmp_path: Path, taken: bool) -> None:
    marker = tmp_path / "agent"
    with socket.socket() as busy:
        port = None
        if taken:  # someone else listens there: the agent starts and meets it itself
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
        stand_in = _on_demand(str(marker), port, stdin=subprocess.PIPE)
        try:
            assert stand_in.wait(timeout=10) == 0
            assert marker.read_text() == str(stand_in.pid)
        finally:
            stand_in.kill()
            stand_in.wait()


def test_agent_address_reads_the_agents_arguments() -> None:
    command = ["python", "-u", "main.py", "--node-ip-address=10.0.0.2",
               "--runtime-env-agent-port=41234", "--gcs-address=10.0.0.2:6379"]
    assert raylet_watch.agent_address(command) == ("10.0.0.2", 41234)
    assert raylet_watch.agent_address(command[:-2]) is None
    assert raylet_watch.agent_address([*command[:3], "--node-ip-address=x",
                                       "--runtime-env-agent-port=0"]) is None
