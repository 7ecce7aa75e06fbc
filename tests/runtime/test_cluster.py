"""Starting and stopping local Ray through its public API, preloading modules meanwhile."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from typing import Any

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

    def children(pid):
        found = []
        for p in os.listdir("/proc"):
            try:
                with open(f"/proc/{p}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if parent == pid:
                found.append(int(p))
        return found

    def tree(pid):
        out = []
        for child in children(pid):
            out += [child, *tree(child)]
        return out

    def title(pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return f.read().replace(b"\\0", b" ").decode(errors="replace")
        except OSError:
            return ""

    @ray.remote(num_cpus=0)
    def answer():
        return 42, os.environ.get("RAY_task_events_report_interval_ms")

    value, task_events = ray.get(answer.remote(), timeout=60)
    procs = tree(os.getpid())
    titles = [title(p) for p in procs]
    resources = ray.cluster_resources()
    stop_ray()

    def running(pid):  # a zombie has exited; only its parent has not collected it yet
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    import time
    deadline = time.monotonic() + 20  # a loaded machine may take a moment to end them
    while any(running(pid) for pid in procs) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = [title(pid) for pid in procs if running(pid)]
    print(json.dumps({"before": before, "started": started, "loaded": loaded,
                      "works": value == 42, "task_events": task_events,
                      "cpus": resources.get("CPU"), "gpus": resources.get("GPU", 0),
                      "dashboard": [t for t in titles if "dashboard/dashboard.py" in t
                                    and "--disable-frontend" not in t],
                      "ours": [t for t in titles if "chainlearn" in t],
                      "raylet": any("raylet/raylet" in t for t in titles),
                      "alive": alive, "initialized": ray.is_initialized()}))
""")


def _run(env: dict[str, str] | None = None) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=120, check=True, env={**os.environ, **(env or {})})
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_local_ray_starts_as_asked_preloads_and_stops_completely() -> None:
    got = _run()
    assert got["before"] is False and got["started"] is True
    # the preloaded module is imported once the preload finished; a missing one is no error
    assert got["loaded"] is True
    # the node has the resources asked for, runs tasks, and has no dashboard (Ray's API
    # server runs without its web frontend)
    assert got["works"] is True and got["raylet"] is True
    assert (got["cpus"], got["gpus"]) == (1.0, 0)
    assert got["dashboard"] == []
    # Ray's own processes with Ray's own settings: none of ours stands in for one of them,
    # and task events stay as Ray has them
    assert got["ours"] == [] and got["task_events"] is None
    # every process of the node this driver started is gone after the stop
    assert got["alive"] == [] and got["initialized"] is False


def test_ray_is_started_with_public_init_arguments_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    from chainlearn_ray.runtime import cluster

    public = set(inspect.signature(ray.init).parameters)
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(cluster.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(cluster.ray, "init", lambda **kwargs: calls.append(kwargs))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    assert cluster.ensure_ray(num_cpus=3, num_gpus=0) is True
    assert cluster.ensure_ray("auto") is True
    cluster.finish_preload()
    local, joined = calls
    assert set(local) <= public and set(joined) <= public
    assert local["include_dashboard"] is False and local["num_cpus"] == 3
    assert local["num_gpus"] == 0 and "address" not in local
    assert joined["address"] == "auto" and "num_cpus" not in joined
    assert not [k for call in calls for k in call if k.startswith("_")]


def test_an_unreachable_cluster_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from chainlearn_ray.errors import ResourceError
    from chainlearn_ray.runtime import cluster

    def refuse(**_kwargs: Any) -> None:
        raise ConnectionError("nobody there")

    monkeypatch.setattr(cluster.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(cluster.ray, "init", refuse)
    with pytest.raises(ResourceError, match="ray start --head"):
        cluster.ensure_ray("10.0.0.1:6379")


def test_hospitals_share_threads_only_where_their_models_allow() -> None:
    from chainlearn_ray.experiment.loading import load_config
    from chainlearn_ray.runtime.cluster import mixed_layout

    tiny = {f"tiers.{t}.arch": "tiny_cnn:8" for t in ("weak", "medium", "strong")}
    cfg = load_config(None, {"hospitals": 10, **tiny})
    # one process per up to four CPUs, threads spread evenly over the processes
    assert [mixed_layout(cfg, n) for n in (1, 2, 4, 6, 16)] == [
        (1, 1), (1, 2), (1, 4), (2, 3), (4, 4)]
    # dropout / stochastic depth (the default weak and medium models): one process per CPU
    assert mixed_layout(load_config(None, {"hospitals": 10}), 2) == (2, 1)
    # a tier without hospitals does not count; a tier with two torch threads does
    assert mixed_layout(load_config(None, {"hospitals": "strong:5"}), 2) == (1, 2)
    assert mixed_layout(load_config(None, {"hospitals": 10, **tiny,
                                           "tiers.weak.threads": 2}), 2) == (2, 1)
