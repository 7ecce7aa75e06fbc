"""The Ray cluster-launcher YAMLs under cluster/ pass Ray's own schema and our own checks."""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from chainlearn_ray.errors import ResourceError
from chainlearn_ray.experiment.loading import load_config
from chainlearn_ray.planning.planner import plan_resources
from chainlearn_ray.planning.resources import TierResources, launcher_capacity
from chainlearn_ray.protocol.tiers import TIERS

ray = pytest.importorskip("ray")
sdk = pytest.importorskip("ray.autoscaler.sdk")
jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {"aws": ROOT / "cluster" / "aws-gpu.yaml", "gcp": ROOT / "cluster" / "gcp-gpu.yaml"}
PROJECT_DIR = "~/chainlearn_ray"


#: The cluster-config schema Ray ships with its autoscaler (what ``ray up`` validates against).
SCHEMA = json.loads(
    importlib.resources.files("ray.autoscaler").joinpath("ray-schema.json").read_text())


def _validate(cfg: dict[str, Any]) -> None:
    """Ray's schema, then the rules across fields that ``ray up`` enforces beyond it."""
    jsonschema.validate(cfg, SCHEMA)
    if "cluster_synced_files" not in cfg:
        raise ValueError("cluster_synced_files is missing")
    if cfg["head_node_type"] not in cfg["available_node_types"]:
        raise ValueError("head_node_type must be one of available_node_types")
    if sum(n.get("min_workers", 0) for n in cfg["available_node_types"].values()) > cfg[
            "max_workers"]:
        raise ValueError("max_workers is below the sum of the node types' min_workers")


def _load(name: str) -> dict[str, Any]:
    with CONFIGS[name].open() as fh:
        return yaml.safe_load(fh)


def _workers(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    head = cfg["head_node_type"]
    return {k: v for k, v in cfg["available_node_types"].items() if k != head}


def _tier_node(cfg: dict[str, Any], label: str) -> dict[str, Any]:
    nodes = [n for n in _workers(cfg).values() if n["resources"].get(f"tier_{label}", 0) > 0]
    assert len(nodes) == 1, f"exactly one worker type must advertise tier_{label}"
    return nodes[0]


@pytest.fixture(params=sorted(CONFIGS))
def cloud(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_config_passes_rays_schema_before_and_after_defaults(cloud: str) -> None:
    cfg = _load(cloud)
    _validate(copy.deepcopy(cfg))
    prepared = sdk.fillout_defaults(copy.deepcopy(cfg))  # the provider's defaults merged in
    _validate(prepared)
    assert prepared["provider"]["type"] == cloud


@pytest.mark.parametrize(
    "breakage",
    [
        lambda c: c["available_node_types"]["gpu_weak"].update(resources={"GPU": 0.5}),
        lambda c: c["available_node_types"]["gpu_weak"].update(gpus=1),
        lambda c: c.update(max_workers=1),
        lambda c: c.update(head_node_type="nope"),
    ],
    ids=["fractional-resource", "unknown-field", "min-above-max", "bad-head-type"],
)
def test_rays_validator_rejects_a_broken_copy(cloud: str, breakage: Any) -> None:
    cfg = _load(cloud)
    cfg["available_node_types"]["gpu_weak"]["min_workers"] = 2  # sum of min_workers: 4
    breakage(cfg)
    with pytest.raises((jsonschema.ValidationError, ValueError)):
        _validate(cfg)


def test_head_holds_no_gpu_and_no_tier_resource(cloud: str) -> None:
    cfg = _load(cloud)
    head = cfg["available_node_types"][cfg["head_node_type"]]["resources"]
    assert head.get("GPU", 0) == 0 and head["CPU"] >= 4
    assert not [k for k in head if k.startswith("tier_")]


def test_every_tier_has_a_gpu_worker_type_advertising_it(cloud: str) -> None:
    cfg = _load(cloud)
    for tier in TIERS:
        node = _tier_node(cfg, tier.label)
        assert node["resources"]["GPU"] >= 1
        tiers = [k for k in node["resources"] if k.startswith("tier_")]
        assert tiers == [f"tier_{tier.label}"]


def test_workers_are_spot_or_preemptible_and_the_head_is_not(cloud: str) -> None:
    cfg = _load(cloud)
    head = cfg["available_node_types"][cfg["head_node_type"]]["node_config"]
    for node in _workers(cfg).values():
        nc = node["node_config"]
        if cloud == "aws":
            assert nc["InstanceMarketOptions"]["MarketType"] == "spot"
        else:
            assert nc["scheduling"]["preemptible"] is True
            assert nc["scheduling"]["onHostMaintenance"] == "TERMINATE"  # required with GPUs
    if cloud == "aws":
        assert "InstanceMarketOptions" not in head
        assert cfg["provider"]["cache_stopped_nodes"] is False
    else:
        assert "scheduling" not in head
        assert "PLACEHOLDER" in CONFIGS[cloud].read_text()


def test_setup_installs_this_working_copy(cloud: str) -> None:
    cfg = _load(cloud)
    assert cfg["file_mounts"][PROJECT_DIR] == "."
    assert ".gitignore" in cfg["rsync_filter"]
    assert (ROOT / "pyproject.toml").read_text().count('name = "chainlearn_ray"') == 1
    pattern = rf"pip install .*-e {PROJECT_DIR}$"
    installs = [c for c in cfg["setup_commands"] if re.search(pattern, c)]
    assert len(installs) == 1
    assert "--python 3.11" in " ".join(cfg["setup_commands"])
    assert "git+https://github.com/YOUR-ORG/YOUR-REPO" in CONFIGS[cloud].read_text()


def test_cluster_ray_matches_the_installed_ray(cloud: str) -> None:
    pins = {m for c in _load(cloud)["setup_commands"]
            for m in re.findall(r"ray\[[a-z,]+\]==([\w.]+)", c)}
    assert pins == {ray.__version__}, "keep the cluster's Ray equal to the local Ray"


def test_ray_start_commands_use_token_auth(cloud: str) -> None:
    cfg = _load(cloud)
    head_start = cfg["head_start_ray_commands"][-1]
    worker_start = cfg["worker_start_ray_commands"][-1]
    assert "RAY_AUTH_MODE=token" in head_start and "ray start --head" in head_start
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head_start
    assert "RAY_AUTH_MODE=token" in worker_start
    assert "ray start --address=$RAY_HEAD_IP:6379" in worker_start
    assert any("ray get-auth-token --generate" in c for c in cfg["head_setup_commands"])
    assert cfg["cluster_synced_files"] == ["~/.ray/auth_token"]
    assert any("export RAY_AUTH_MODE=token" in c and ".bashrc" in c
               for c in cfg["setup_commands"])


def test_worker_counts_are_sane(cloud: str) -> None:
    cfg = _load(cloud)
    workers = _workers(cfg)
    assert cfg["max_workers"] == sum(n["max_workers"] for n in workers.values())
    assert 1 <= cfg["max_workers"] <= 32
    for node in workers.values():
        # One node per tier is up after `ray up` (a paper run starts at once), no more idles.
        assert node["min_workers"] == 1
        assert node["min_workers"] <= node["max_workers"] <= cfg["max_workers"]
    assert 1 <= cfg["idle_timeout_minutes"] <= 30


def test_paper_hospitals_fit_each_tier_node_and_the_whole_cluster(cloud: str) -> None:
    cfg = _load(cloud)
    paper = load_config(str(ROOT / "experiments" / "paper.yaml"))
    counts: dict[str, int] = {}
    per_tier: dict[str, TierResources] = {}
    nodes = [n["resources"] for n in cfg["available_node_types"].values()]
    for tier in TIERS:
        label = tier.label
        shape = paper.tiers[label]
        node = _tier_node(cfg, label)
        slots = node["resources"][f"tier_{label}"]
        # A node advertises exactly as many tier slots as paper-shaped hospitals it can hold.
        assert slots * shape.num_cpus <= node["resources"]["CPU"]
        assert slots * shape.num_gpus <= node["resources"]["GPU"] + 1e-9
        assert (slots + 1) * shape.num_gpus > node["resources"]["GPU"] or (
            (slots + 1) * shape.num_cpus > node["resources"]["CPU"]
        )
        counts[label] = slots * node["max_workers"]
        per_tier[label] = TierResources(shape.num_cpus, shape.num_gpus, custom={f"tier_{label}": 1})
    capacity = launcher_capacity(cfg)
    plan = plan_resources(counts, per_tier, capacity, coordinator_cpus=1.0, device="cuda",
                          fit_cpus=False, nodes=nodes)
    assert plan.cpu_scale == 1.0
    assert plan.gpus_used == sum(n["max_workers"] for n in _workers(cfg).values())
    # One hospital more than the tier slots cannot be placed: the planner says so.
    counts["strong"] += 1
    with pytest.raises(ResourceError, match="'tier_strong': hospitals need"):
        plan_resources(counts, per_tier, capacity, device="cuda", fit_cpus=False)
