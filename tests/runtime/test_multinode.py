"""A full run on a local multi-node Ray cluster: hospitals land on the nodes of their tier.

The cluster (a head and two worker raylets on this machine, ``ray.cluster_utils.Cluster``) runs
in a child process with its own Ray temp folder, so it neither meets the session's local Ray
(``ray_local``) nor other Ray instances on the machine. Run directly, this module is that child:
``python -m tests.runtime.test_multinode DATA_DIR OUT_DIR`` writes ``OUT_DIR/placement.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Worker nodes: custom tier resources (hospital slots) and logical CPUs.
NODES: dict[str, dict[str, Any]] = {
    "weak_medium": {"num_cpus": 4, "resources": {"tier_weak": 2, "tier_medium": 2}},
    "strong": {"num_cpus": 2, "resources": {"tier_strong": 2}},
}
HOSPITALS = {"weak": 2, "medium": 2, "strong": 2}
#: Hospitals per actor process: a packed actor asks for two slots of its tier's resource.
PER_ACTOR = 2


def cluster_run(data_dir: str, out_dir: str) -> dict[str, Any]:
    """Start the cluster, run a tiny federation against its address, report placements."""
    from ray.cluster_utils import Cluster

    from chainlearn_ray.runtime.scaling import PlacementProbe
    from chainlearn_ray.runtime.simulation import run_simulation

    from .conftest import tiny_config

    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        for node in NODES.values():
            cluster.add_node(num_cpus=node["num_cpus"], resources=node["resources"])
        cluster.wait_for_nodes()
        overrides: dict[str, Any] = {
            "hospitals": dict(HOSPITALS), "runtime.address": cluster.address,
            "runtime.hospitals_per_actor": PER_ACTOR, "train.rounds": 1, "train.epochs": 1,
        }
        for tier in HOSPITALS:
            overrides[f"tiers.{tier}.resources"] = {f"tier_{tier}": 1}
        cfg = tiny_config(Path(data_dir), **overrides)
        probe = PlacementProbe(cfg)
        summary = run_simulation(cfg, out_dir, progress=probe)
        return {
            "head": cluster.head_node.node_id,
            "nodes": probe.nodes,
            "placements": {h: p.node_id for h, p in probe.placements.items()},
            "pids": {h: f"{p.node_id}:{p.pid}" for h, p in probe.placements.items()},
            "hardware": {r["hospital_id"]: r["hardware_tier"] for r in summary.registrations},
            "participants": [o.participants for o in summary.rounds],
        }
    finally:
        cluster.shutdown()


@pytest.mark.slow
def test_hospitals_run_on_their_tier_nodes(synth_dir: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    # a private, short Ray temp folder (unix socket paths have a length limit)
    env["RAY_TMPDIR"] = ray_tmp = tempfile.mkdtemp(prefix="clmn", dir="/tmp")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "tests.runtime.test_multinode", str(synth_dir),
             str(tmp_path / "run")],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=420,
        )
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads((tmp_path / "run" / "placement.json").read_text())
    nodes, placements = report["nodes"], report["placements"]
    assert len(nodes) == 3
    assert sorted(placements) == sorted(report["hardware"])
    assert len(placements) == sum(HOSPITALS.values())
    for hospital, node in placements.items():
        tier = report["hardware"][hospital]
        assert nodes[node].get(f"tier_{tier}", 0) > 0, (hospital, tier, nodes[node])
        assert node != report["head"]
    by_tier: dict[str, set[str]] = {}
    for hospital, node in placements.items():
        by_tier.setdefault(report["hardware"][hospital], set()).add(node)
    assert by_tier["weak"] == by_tier["medium"] and by_tier["weak"].isdisjoint(by_tier["strong"])
    assert report["participants"] == [sum(HOSPITALS.values())]
    assert len(set(report["pids"].values())) == 3  # one actor process per tier
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "complete"


if __name__ == "__main__":
    result = cluster_run(sys.argv[1], sys.argv[2])
    (Path(sys.argv[2]) / "placement.json").write_text(json.dumps(result))
