"""Stand-ins for Ray's two agents on a lean local node: they stay exactly as long as the raylet.

The raylet starts two agents with every node and stops when either of them ends, so whatever
takes an agent's place must stay until the raylet ends. The raylet connects a pipe to an
agent's standard input, which closes when the raylet ends (where it gives no pipe, the
raylet's pid is in ``RAY_RAYLET_PID``). A lean local node
(:func:`chainlearn_ray.runtime.cluster._lean_local_node`) runs this file, which imports only
the standard library, in two places:

- **The dashboard agent of a minimal Ray install** (no ``ray[default]``):
  ``python -S raylet_watch.py AGENT_ARGS...`` (ignored). That agent imports Ray and tries each
  of its two dozen modules, every one of which fails for a missing package (1-1.5
  CPU-seconds, in the middle of a run's start), then loads none and only watches the raylet.
  This does just the watching.
- **The runtime-env agent, until it is first asked for something**:
  ``python -S raylet_watch.py --on-demand COMMAND...``. The raylet asks that agent
  for something only to start a worker whose runtime environment is not empty
  (``runtime_env=``), which no run of this package uses; yet the agent's start (Ray, aiohttp
  and the rest: about 0.8 CPU-seconds) fell in the middle of every run's start. This holds
  the address and port that COMMAND gives the agent and watches the raylet. At the first
  connection to the port it lets the port go and becomes the agent: it executes COMMAND,
  Ray's own command for the agent, in this same process, so the raylet's pipe and its watch
  on the agent's pid carry over. The raylet retries a request whose connection failed until
  the agent answers (every ``agent_manager_retry_interval_ms``, for up to
  ``agent_register_timeout_ms``), so that first request is served by the real agent once it
  is up. The agent then runs at the raylet's priority: someone is waiting for it.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import stat
import sys


def raylet_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (an exited one not yet reaped counts as gone where
    ``/proc`` tells; without it, a signal-0 probe decides)."""
    if os.path.isdir("/proc"):
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except (OSError, IndexError):
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, owned by someone else
        return True
    return True


def watch(listener: socket.socket | None = None) -> bool:
    """Wait until the raylet ends (False) or ``listener`` has a connection waiting (True).

    The raylet's end shows as its pipe on standard input closing, or, without a pipe, as
    ``RAY_RAYLET_PID`` no longer running (checked each second). With neither the raylet
    stops its agents itself, and this waits for a connection only.
    """
    pipe = stat.S_ISFIFO(os.fstat(0).st_mode)
    pid = int(os.environ.get("RAY_RAYLET_PID", "0") or 0)
    watched: list[int | socket.socket] = [0] if pipe else []
    if listener is not None:
        watched.append(listener)
    while True:
        ready = select.select(watched, [], [], None if pipe else 1.0)[0]
        if listener is not None and listener in ready:
            return True
        if pipe:
            if 0 in ready and not os.read(0, 1 << 16):  # closed: the raylet ended
                return False
        elif pid > 0 and not raylet_alive(pid):
            return False


def _listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` as Ray's runtime-env agent binds it (the first
    address ``host`` resolves to, with ``SO_REUSEADDR``)."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    return socket.create_server(address, family=family)


def agent_address(command: list[str]) -> tuple[str, int] | None:
    """``(host, port)`` that the runtime-env agent started by ``command`` listens on, where
    the command fixes both."""
    options = dict(arg.split("=", 1) for arg in command if arg.startswith("--") and "=" in arg)
    host = options.get("--node-ip-address", "")
    port = options.get("--runtime-env-agent-port", "")
    return (host, int(port)) if host and port.isdigit() and int(port) > 0 else None


def on_demand(command: list[str]) -> None:
    """Hold the agent's port while the raylet runs; at its first connection, become
    ``command``. Where the port is not known or not free, become ``command`` at once."""
    address = agent_address(command)
    listener = None
    if address is not None:
        # a port that is not free: the agent starts now and reports that itself
        with contextlib.suppress(OSError):
            listener = _listen(*address)
    if listener is not None:
        if not watch(listener):
            return  # the raylet ended
        listener.close()  # the waiting connection fails and the raylet retries it
    os.execv(command[0], command)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--on-demand"]:
        on_demand(argv[1:])
    else:  # the dashboard agent's arguments follow, unused
        watch()


if __name__ == "__main__":
    main(sys.argv[1:])
