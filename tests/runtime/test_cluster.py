"""Starting and stopping local Ray: preloading modules meanwhile, and a complete stop."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent("""
    import json, os, sys
    import ray
    from chainlearn_ray.runtime.cluster import ensure_ray, stop_ray

    module = "chainlearn_ray.results.store"
    before = module in sys.modules
    started = ensure_ray(num_cpus=1, preload=(module, "chainlearn_ray.no_such_module"))
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


def test_local_ray_preloads_and_stops_completely() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=120, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["before"] is False and got["started"] is True
    # the preloaded module is imported when ensure_ray returns; a missing one is no error
    assert got["loaded"] is True
    # every process of the node this driver started is gone, the autoscaler monitor included
    assert "monitor" in got["kinds"] and "raylet" in got["kinds"]
    assert got["alive"] == [] and got["initialized"] is False
