"""Starting and stopping local Ray: preloading modules meanwhile, and a complete stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent("""
    import json, os, sys
    import ray
    from chainlearn_ray.runtime.cluster import ensure_ray, finish_preload, stop_ray

    module = "chainlearn_ray.results.store"
    before = module in sys.modules
    started = ensure_ray(num_cpus=1, preload=(module, "chainlearn_ray.no_such_module"))
    finish_preload()
    loaded = module in sys.modules
    from ray._private import worker
    procs = {kind: [p.process.pid for p in infos]
             for kind, infos in worker._global_node.all_processes.items()}
    stop_ray()
    alive = []
    for kind, pids in procs.items():
        for pid in pids:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            alive.append(kind)
    print(json.dumps({"before": before, "started": started, "loaded": loaded,
                      "kinds": sorted(procs), "alive": alive,
                      "initialized": ray.is_initialized()}))
""")


def _run(env: dict[str, str] | None = None) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=120, check=True, env={**os.environ, **(env or {})})
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_local_ray_starts_lean_preloads_and_stops_completely() -> None:
    got = _run({"CHAINLEARN_FULL_RAY_START": "0"})
    assert got["before"] is False and got["started"] is True
    # the preloaded module is imported once the preload finished; a missing one is no error
    assert got["loaded"] is True
    # a local node runs without the API server and the autoscaler monitor
    assert "raylet" in got["kinds"] and "gcs_server" in got["kinds"]
    assert "monitor" not in got["kinds"] and "dashboard" not in got["kinds"]
    # every process of the node this driver started is gone
    assert got["alive"] == [] and got["initialized"] is False


def test_full_ray_start_on_request_stops_completely() -> None:
    got = _run({"CHAINLEARN_FULL_RAY_START": "1"})
    assert got["started"] is True and got["loaded"] is True
    # Ray's own start: with them, and the autoscaler monitor is stopped too
    assert "monitor" in got["kinds"] and "dashboard" in got["kinds"]
    assert got["alive"] == [] and got["initialized"] is False
