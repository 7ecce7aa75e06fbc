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

    @ray.remote(num_cpus=0)
    def answer():
        return 42, os.environ.get("RAY_task_events_report_interval_ms")

    value, task_events = ray.get(answer.remote(), timeout=60)
    works = value == 42

    @ray.remote(num_cpus=0)
    def probe():
        return os.environ.get("CHAINLEARN_PROBE")
    driver_env = os.environ.get("RAY_task_events_report_interval_ms")

    def stat(pid):
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()

    def title(pid):
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace")

    raylet = procs["raylet"][0]
    children = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(stat(p)[1]) == raylet]
    def priority(pid):  # (scheduling policy, nice); SCHED_IDLE is policy 5
        fields = stat(pid)
        return [int(fields[38]), int(fields[16])]

    on_demand = [p for p in children if "--on-demand" in title(p)]
    watchers = [p for p in children if "raylet_watch" in title(p) and p not in on_demand]
    agents = sorted(priority(p) for p in children
                    if "agent" in title(p).lower() and p not in watchers + on_demand)
    on_demand_policy = [priority(p)[0] for p in on_demand]
    # a task with a runtime environment: the raylet asks the runtime-env agent for it
    env_works = ray.get(probe.options(runtime_env={"env_vars": {"CHAINLEARN_PROBE": "yes"}})
                        .remote(), timeout=120) == "yes"
    became_agent = ["raylet_watch" not in title(p) for p in on_demand]
    minimal = "--minimal" in title(raylet)
    log_monitor = [priority(p) for p in procs.get("log_monitor", [])]
    agent_ports_known = "--metrics-agent-port=-1" in title(raylet)
    stop_ray()
    alive = []
    for kind, pids in [*procs.items(), ("raylet_watch", watchers + on_demand)]:
        for pid in pids:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            alive.append(kind)
    print(json.dumps({"before": before, "started": started, "loaded": loaded,
                      "kinds": sorted(procs), "alive": alive, "works": works,
                      "agents": agents, "log_monitor": log_monitor,
                      "watchers": len(watchers), "minimal": minimal,
                      "on_demand": len(on_demand), "on_demand_policy": on_demand_policy,
                      "env_works": env_works, "became_agent": became_agent,
                      "agent_ports_known": agent_ports_known,
                      "task_events": task_events, "driver_env": driver_env,
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
    # its raylet knew the agents' ports from the start; agents and log monitor run on idle
    # CPU time (SCHED_IDLE), and the node runs tasks
    assert got["agent_ports_known"] is True and got["works"] is True
    from chainlearn_ray.runtime.cluster import _idle_command_prefix

    idle = [5, 0] if _idle_command_prefix()[1:2] == ["--idle"] else [0, 19]  # else nice 19
    # without ray[default] the dashboard agent's place is taken by a process that only
    # watches the raylet (all the minimal agent does, without its failing imports)
    if got["minimal"]:
        assert got["watchers"] == 1 and got["agents"] == []
    else:
        assert got["watchers"] == 0 and got["agents"] == [idle]
    # the runtime-env agent starts when first asked for (by a task with a runtime
    # environment), in the process that held its place, at normal priority
    assert got["on_demand"] == 1 and got["on_demand_policy"] == [0]
    assert got["env_works"] is True and got["became_agent"] == [True]
    assert got["log_monitor"] == [idle]
    # Ray's processes run without task events; the driver's environment is as it was
    assert got["task_events"] == "0" and got["driver_env"] is None
    # every process of the node this driver started is gone
    assert got["alive"] == [] and got["initialized"] is False


def test_full_ray_start_on_request_stops_completely() -> None:
    got = _run({"CHAINLEARN_FULL_RAY_START": "1"})
    assert got["started"] is True and got["loaded"] is True
    # Ray's own start: with them, and the autoscaler monitor is stopped too
    assert "monitor" in got["kinds"] and "dashboard" in got["kinds"]
    assert got["agent_ports_known"] is False and got["works"] is True
    assert got["task_events"] is None and got["watchers"] == 0 and got["on_demand"] == 0
    assert got["env_works"] is True
    assert got["alive"] == [] and got["initialized"] is False


def test_lean_start_keeps_a_task_events_setting_of_the_user() -> None:
    got = _run({"CHAINLEARN_FULL_RAY_START": "0", "RAY_task_events_report_interval_ms": "500"})
    assert got["task_events"] == "500" and got["driver_env"] == "500"
    assert got["alive"] == [] and got["initialized"] is False


def test_missing_dashboard_package_found_without_importing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from chainlearn_ray.runtime import cluster

    monkeypatch.setattr(cluster, "_DASHBOARD_PACKAGES", ("json", "chainlearn_no_such_package"))
    missing = cluster._missing_dashboard_dependency()
    assert isinstance(missing, ModuleNotFoundError)
    assert missing.name == "chainlearn_no_such_package"
    # everything there: Ray's own check decides
    monkeypatch.setattr(cluster, "_DASHBOARD_PACKAGES", ("json",))
    assert cluster._missing_dashboard_dependency() is None


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
