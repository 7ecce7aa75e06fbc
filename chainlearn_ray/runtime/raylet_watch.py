"""Stay until the raylet ends: all that Ray's dashboard agent does in a minimal Ray install.

Without ``ray[default]`` the raylet still starts its dashboard agent, with ``--minimal``. That
agent imports Ray and tries each of its two dozen modules, every one of which fails for a
missing package (1-1.5 CPU-seconds, in the middle of a run's start), then loads none and only
watches the raylet: the raylet connects a pipe to its standard input and the agent exits when
that pipe closes (or, where the raylet gives no pipe, when the raylet's process is gone). The
raylet in turn stops with its agent, so something must stay.

A lean local node (:func:`chainlearn_ray.runtime.cluster._lean_local_node`) runs this file in
the agent's place, with the agent's arguments (ignored). It imports only the standard library.
"""

from __future__ import annotations

import os
import stat
import time


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


def main() -> None:
    if stat.S_ISFIFO(os.fstat(0).st_mode):
        while os.read(0, 1 << 16):  # the raylet's pipe: it closes when the raylet ends
            pass
        return
    pid = int(os.environ.get("RAY_RAYLET_PID", "0") or 0)
    while raylet_alive(pid) if pid > 0 else True:  # no pid: the raylet stops its agents
        time.sleep(1.0)


if __name__ == "__main__":
    main()
