"""Tests of the pure resource planner on logical cluster dicts (no Ray cluster)."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainlearn_ray.errors import ConfigError, ResourceError
from chainlearn_ray.planning.planner import plan_resources
from chainlearn_ray.planning.resources import (
    UNIT,
    ResourcePlan,
    TierResources,
    launcher_capacity,
)

T = TierResources
THREE = {"weak": 6, "medium": 5, "strong": 4}
GPU_TIERS = {
    "weak": T(num_cpus=1, num_gpus=0.25, gpu_memory_gb=4),
    "medium": T(num_cpus=1, num_gpus=0.5, gpu_memory_gb=8),
    "strong": T(num_cpus=2, num_gpus=1, gpu_memory_gb=16),
}


def _is_ray_quantity(x: float) -> bool:
    return abs(x * UNIT - round(x * UNIT)) < 1e-6


# --- TierResources validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"num_cpus": -1}, "num_cpus"),
        ({"num_gpus": 1.5}, "whole number of GPUs"),
        ({"num_gpus": -0.5}, "num_gpus"),
        ({"num_gpus": 0.00001}, "smallest quantity"),
        ({"num_cpus": math.inf}, "finite"),
        ({"gpu_memory_gb": 0}, "gpu_memory_gb"),
        ({"custom": {"GPU": 1}}, "num_gpus"),
        ({"custom": {"": 1}}, "non-empty"),
        ({"custom": {"tier_strong": -1}}, "tier_strong"),
    ],
)
def test_tier_resources_rejects_invalid_values(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        TierResources(**kwargs)


def test_tier_resources_accepts_fractions_and_whole_gpus_and_freezes_custom() -> None:
    source = {"tier_strong": 1}
    res = T(num_cpus=0.5, num_gpus=1 / 3, custom=source)
    source["tier_strong"] = 5
    assert res.custom == {"tier_strong": 1.0}
    with pytest.raises(TypeError):
        res.custom["x"] = 1  # type: ignore[index]
    assert T(num_gpus=4).num_gpus == 4
    assert T(num_gpus=1.0).num_gpus == 1.0


# --- GPU packing -----------------------------------------------------------------------------


def test_mixed_fractions_pack_into_the_cluster_gpus() -> None:
    plan = plan_resources(THREE, GPU_TIERS, {"CPU": 64.0, "GPU": 8.0}, gpu_memory_gb=24)
    assert plan.tiers["weak"].hospitals_per_gpu == 4
    assert plan.tiers["medium"].hospitals_per_gpu == 2
    assert plan.tiers["strong"].hospitals_per_gpu is None
    # 4 strong take a GPU each; 5 medium fill 2.5 GPUs; 6 weak fill 1.5 GPUs -> 8 GPUs.
    assert plan.gpus_used == 8
    assert all(0 < g.used <= 1 for g in plan.gpu_groups)
    assert sum(g.members.get("weak", 0) for g in plan.gpu_groups) == 6
    assert sum(g.members.get("medium", 0) for g in plan.gpu_groups) == 5
    assert plan.shared_gpu_tiers == (("medium", "weak"),)
    shared = next(g for g in plan.gpu_groups if len(g.tiers) == 2)
    assert shared.members == {"medium": 1, "weak": 2}
    assert shared.memory_gb == 16
    assert plan.concurrency == 15
    assert plan.cpu_scale == 1.0
    assert plan.ray_options("strong") == {"num_cpus": 2.0, "num_gpus": 1.0, "resources": {}}
    assert plan.tiers["weak"].device == "cuda"


def test_one_third_share_packs_three_per_gpu_and_rounds_to_ray_units() -> None:
    tiers = {"strong": T(num_cpus=1, num_gpus=1 / 3)}
    plan = plan_resources({"strong": 9}, tiers, {"CPU": 16, "GPU": 3})
    assert plan.ray_options("strong")["num_gpus"] == 0.3333
    assert plan.tiers["strong"].hospitals_per_gpu == 3
    assert plan.gpus_used == 3
    assert [g.members for g in plan.gpu_groups] == [{"strong": 3}] * 3
    with pytest.raises(ResourceError, match="need 4 GPUs"):
        plan_resources({"strong": 10}, tiers, {"CPU": 16, "GPU": 3})


def test_gpu_overflow_says_which_fraction_fits() -> None:
    tiers = {"strong": T(num_cpus=1, num_gpus=0.25)}
    with pytest.raises(ResourceError) as err:
        plan_resources({"strong": 40}, tiers, {"CPU": 80, "GPU": 4})
    text = str(err.value)
    assert "need 10 GPUs" in text and "has 4" in text
    assert "1/10 = 0.1" in text and "add 6 GPUs" in text and "--device cpu" in text
    # The advice works: 1/10 of a GPU each fits.
    fixed = plan_resources({"strong": 40}, {"strong": T(1, 0.1)}, {"CPU": 80, "GPU": 4})
    assert fixed.gpus_used == 4


def test_whole_gpu_overflow_and_a_cluster_without_cpus() -> None:
    with pytest.raises(ResourceError, match=r"need 6 GPUs .*every GPU tier to 1, .*add 2 GPUs"):
        plan_resources({"strong": 3}, {"strong": T(1, 2)}, {"CPU": 8, "GPU": 4})
    with pytest.raises(ResourceError, match="connect to a cluster with CPUs"):
        plan_resources({"weak": 1}, {"weak": T(1)}, {"GPU": 1})


def test_fragmentation_is_caught_even_when_the_sum_fits() -> None:
    # 3 × 0.6 = 1.8 GPUs in sum, but no two shares fit on one GPU.
    tiers = {"medium": T(num_cpus=1, num_gpus=0.6)}
    with pytest.raises(ResourceError, match="need 3 GPUs"):
        plan_resources({"medium": 3}, tiers, {"CPU": 8, "GPU": 2})


def test_gpu_request_on_a_cpu_cluster_suggests_device_cpu() -> None:
    with pytest.raises(ResourceError, match=r"no GPU: pass --device cpu") as err:
        plan_resources(THREE, GPU_TIERS, {"CPU": 8.0})
    assert "strong 1 GPU each" in str(err.value)


def test_device_cpu_forces_every_gpu_share_to_zero() -> None:
    plan = plan_resources(THREE, GPU_TIERS, {"CPU": 64.0}, device="cpu")
    assert all(plan.ray_options(t)["num_gpus"] == 0 for t in THREE)
    assert plan.gpu_groups == ()
    assert any("device cpu" in w for w in plan.warnings)
    assert {p.device for p in plan.tiers.values()} == {"cpu"}


def test_device_cuda_requires_every_tier_to_hold_a_gpu_share() -> None:
    tiers = dict(GPU_TIERS, weak=T(num_cpus=1))
    with pytest.raises(ResourceError, match=r"tier\(s\) weak have num_gpus 0"):
        plan_resources(THREE, tiers, {"CPU": 64, "GPU": 8}, device="cuda")
    plan = plan_resources(THREE, tiers, {"CPU": 64, "GPU": 8}, device="auto")
    assert plan.tiers["weak"].device == "cpu"


def test_idle_gpus_are_reported() -> None:
    plan = plan_resources({"weak": 2}, {"weak": T(1)}, {"CPU": 4, "GPU": 2})
    assert any("no tier asks for one" in w for w in plan.warnings)


# --- GPU memory ------------------------------------------------------------------------------


def test_gpu_memory_worst_case_packing_is_rejected_with_the_fraction_to_use() -> None:
    tiers = {"strong": T(num_cpus=1, num_gpus=0.5, gpu_memory_gb=16)}
    with pytest.raises(ResourceError) as err:
        plan_resources({"strong": 4}, tiers, {"CPU": 8, "GPU": 4}, gpu_memory_gb=24)
    text = str(err.value)
    assert "2 strong (2×16 GB) = 32 GB > 24 GB" in text
    assert "strong num_gpus to 1 (whole GPUs)" in text


def test_gpu_memory_check_sees_mixed_tiers_on_one_gpu() -> None:
    tiers = {
        "weak": T(num_cpus=1, num_gpus=0.25, gpu_memory_gb=7),
        "strong": T(num_cpus=1, num_gpus=0.5, gpu_memory_gb=10),
    }
    available = {"CPU": 16, "GPU": 8}
    # 4 weak could share a GPU: 28 GB > 24 GB.
    with pytest.raises(ResourceError, match=r"4 weak .* = 28 GB > 24 GB.*weak num_gpus to 1/3"):
        plan_resources({"weak": 4, "strong": 2}, tiers, available, gpu_memory_gb=24)
    # With 3 weak the worst GPU is 2 weak + 1 strong or 3 weak (21-24 GB): it fits.
    plan = plan_resources({"weak": 3, "strong": 2}, tiers, available, gpu_memory_gb=24)
    assert all((g.memory_gb or 0) <= 24 for g in plan.gpu_groups)


def test_whole_gpu_budget_larger_than_one_gpu() -> None:
    tiers = {"strong": T(num_cpus=1, num_gpus=1, gpu_memory_gb=60)}
    with pytest.raises(ResourceError, match="raise strong num_gpus to 2"):
        plan_resources({"strong": 1}, tiers, {"CPU": 4, "GPU": 2}, gpu_memory_gb=40)
    ok = plan_resources({"strong": 1}, {"strong": T(1, 2, 60)}, {"CPU": 4, "GPU": 2},
                        gpu_memory_gb=40)
    assert ok.gpu_groups[0].gpus == 2


def test_missing_memory_budgets_are_warned_about() -> None:
    tiers = {"weak": T(num_cpus=1, num_gpus=0.5)}
    plan = plan_resources({"weak": 2}, tiers, {"CPU": 4, "GPU": 1}, gpu_memory_gb=16)
    assert any("no gpu_memory_gb budget for tier(s) weak" in w for w in plan.warnings)
    plan = plan_resources(THREE, GPU_TIERS, {"CPU": 64, "GPU": 8})
    assert any("budgets not checked" in w for w in plan.warnings)


# --- CPU fitting -----------------------------------------------------------------------------


def test_48_hospitals_time_share_two_cpus() -> None:
    counts = {"weak": 16, "medium": 16, "strong": 16}
    tiers = {"weak": T(1), "medium": T(1), "strong": T(2)}
    plan = plan_resources(counts, tiers, {"CPU": 2.0}, coordinator_cpus=1.0)
    assert plan.cpu_scale == pytest.approx(2 / 65)
    demand = plan.total_demand()
    assert demand["CPU"] <= 2.0
    assert demand["CPU"] > 1.99
    for tier in counts:
        cpus = plan.ray_options(tier)["num_cpus"]
        assert 0 < cpus < 1 and _is_ray_quantity(cpus)
    assert plan.ray_options("strong")["num_cpus"] == pytest.approx(
        2 * plan.ray_options("weak")["num_cpus"], abs=1 / UNIT
    )
    assert 0 < plan.coordinator_options()["num_cpus"] < 1
    assert any("time-share" in w for w in plan.warnings)
    # One core is the coordinator's, the other fits one 1-CPU hospital at a time.
    assert plan.concurrency == 1


def test_cpu_overflow_without_fitting_names_the_numbers_to_lower() -> None:
    tiers = {"weak": T(1), "strong": T(4)}
    with pytest.raises(ResourceError) as err:
        plan_resources({"weak": 2, "strong": 4}, tiers, {"CPU": 8}, fit_cpus=False)
    text = str(err.value)
    assert "need 19 CPUs (weak 2×1 + strong 4×4 + coordinator 1)" in text
    assert "has 8" in text
    assert "weak num_cpus <= 0.421" in text and "strong num_cpus <= 1.6842" in text
    assert "fit_cpus" in text


def test_cpus_that_fit_are_untouched() -> None:
    plan = plan_resources({"weak": 3}, {"weak": T(0.5)}, {"CPU": 4})
    assert plan.cpu_scale == 1.0 and plan.warnings == ()
    assert plan.ray_options("weak")["num_cpus"] == 0.5
    assert plan.concurrency == 3


def test_cpu_fractions_are_rounded_down_to_ray_units() -> None:
    plan = plan_resources({"weak": 1}, {"weak": T(0.12345)}, {"CPU": 4})
    assert plan.ray_options("weak")["num_cpus"] == 0.1234


# --- custom resources and nodes --------------------------------------------------------------


def test_absent_custom_resource_is_named() -> None:
    tiers = {"strong": T(1, 0.5, custom={"tier_strong": 1})}
    with pytest.raises(ResourceError) as err:
        plan_resources({"strong": 4}, tiers, {"CPU": 8, "GPU": 2})
    text = str(err.value)
    assert "'tier_strong'" in text and "no node of the cluster advertises it" in text
    assert "ray start --resources='{\"tier_strong\": 4}'" in text


def test_insufficient_custom_resource_is_reported() -> None:
    tiers = {"strong": T(1, 0.5, custom={"tier_strong": 1})}
    with pytest.raises(ResourceError, match=r"need 4 \(strong 4×1\) but the cluster has 2"):
        plan_resources({"strong": 4}, tiers, {"CPU": 8, "GPU": 2, "tier_strong": 2})


def test_custom_resources_reach_ray_options_and_bundles() -> None:
    tiers = {"strong": T(1, 0.5, custom={"tier_strong": 0.5, "x": 1 / 3}), "weak": T(0.5)}
    available = {"CPU": 8, "GPU": 2, "tier_strong": 2, "x": 2, "node:10.0.0.1": 1.0, "memory": 1e9}
    plan = plan_resources({"strong": 4, "weak": 2}, tiers, available)
    assert plan.ray_options("strong")["resources"] == {"tier_strong": 0.5, "x": 0.3333}
    assert plan.ray_options("weak")["resources"] == {}
    bundles = plan.bundles()
    assert len(bundles) == 1 + 6
    assert bundles.count({"CPU": 1.0, "GPU": 0.5, "tier_strong": 0.5, "x": 0.3333}) == 4
    assert plan.total_demand() == {"CPU": 6.0, "GPU": 2.0, "tier_strong": 2.0, "x": 1.3332}


def test_an_actor_larger_than_any_node_is_rejected() -> None:
    nodes = [{"CPU": 2.0, "GPU": 1.0}, {"CPU": 2.0, "tier_strong": 4.0}]
    tiers = {"strong": T(1, 0.5, custom={"tier_strong": 1})}
    available = {"CPU": 4.0, "GPU": 1.0, "tier_strong": 4.0}
    with pytest.raises(ResourceError, match="no single node has all of it"):
        plan_resources({"strong": 2}, tiers, available, nodes=nodes)
    good = [{"CPU": 2.0, "GPU": 1.0, "tier_strong": 4.0}, {"CPU": 2.0}]
    assert plan_resources({"strong": 2}, tiers, available, nodes=good).gpus_used == 1


def test_launcher_capacity_counts_head_and_max_workers() -> None:
    config = {
        "max_workers": 5,
        "head_node_type": "head",
        "available_node_types": {
            "head": {"resources": {"CPU": 8, "GPU": 0}},
            "gpu": {"max_workers": 3, "resources": {"CPU": 8, "GPU": 1, "tier_strong": 2}},
            "cpu": {"resources": {"CPU": 4}},  # no own limit: the global max_workers applies
        },
    }
    assert launcher_capacity(config) == {"CPU": 8 + 24 + 20, "GPU": 3.0, "tier_strong": 6.0}
    with pytest.raises(ConfigError, match="cluster config"):
        launcher_capacity({"max_workers": 2})


# --- config errors ---------------------------------------------------------------------------


def test_invalid_arguments_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match="device 'gpu'"):
        plan_resources({"weak": 1}, {"weak": T()}, {"CPU": 1}, device="gpu")
    with pytest.raises(ConfigError, match="int >= 0"):
        plan_resources({"weak": -1}, {"weak": T()}, {"CPU": 1})
    with pytest.raises(ConfigError, match="no resources"):
        plan_resources({"strong": 1}, {"weak": T()}, {"CPU": 1})
    plan = plan_resources({"weak": 1, "strong": 0}, {"weak": T()}, {"CPU": 2})
    with pytest.raises(ConfigError, match="known \\['weak'\\]"):
        plan.ray_options("strong")


# --- render and determinism ------------------------------------------------------------------


def test_render_shows_the_key_facts() -> None:
    plan = plan_resources(THREE, GPU_TIERS, {"CPU": 8.0, "GPU": 8.0}, gpu_memory_gb=24)
    text = plan.render()
    assert "15 hospital actors + 1 coordinator" in text and "8 CPUs and 8 GPUs" in text
    for tier, count in THREE.items():
        assert any(line.split()[:2] == [tier, str(count)] for line in text.splitlines())
    assert "GPUs used: 8 of 8" in text
    assert "4 × GPU: strong×1, 16 GB" in text
    assert "shared GPUs: medium + weak" in text
    assert f"CPU time-sharing: every num_cpus scaled by {plan.cpu_scale:.4f}" in text
    assert "Hospitals training at once:" in text
    assert "Warnings:" in text and "time-share cores" in text


def test_render_cpu_only_plan() -> None:
    plan = plan_resources({"weak": 2}, {"weak": T(custom={"site": 1})}, {"CPU": 4, "site": 2})
    text = plan.render()
    assert "all hospitals on CPU" in text and "site=1" in text and "Warnings" not in text


def test_same_inputs_give_the_same_plan() -> None:
    a = plan_resources(THREE, GPU_TIERS, {"CPU": 6, "GPU": 8})
    b = plan_resources(dict(reversed(THREE.items())), GPU_TIERS, {"CPU": 6, "GPU": 8})
    assert a == b and a.render() == b.render()


def test_options_are_accepted_by_ray() -> None:
    utils = pytest.importorskip("ray._common.ray_option_utils")
    plan = plan_resources(THREE, GPU_TIERS, {"CPU": 3, "GPU": 8, "x": 1})
    for tier in THREE:
        utils.validate_actor_options(plan.ray_options(tier), in_options=True)
    utils.validate_actor_options(plan.coordinator_options(), in_options=True)


@settings(max_examples=150, deadline=None)
@given(
    counts=st.dictionaries(st.sampled_from(["weak", "medium", "strong"]),
                           st.integers(0, 30), min_size=1),
    cpus=st.lists(st.sampled_from([0, 0.25, 0.5, 1, 2, 3.3]), min_size=3, max_size=3),
    gpus=st.lists(st.sampled_from([0, 0.1, 0.2, 0.25, 1 / 3, 0.4, 0.5, 0.7, 1, 2]),
                  min_size=3, max_size=3),
    cluster_cpus=st.sampled_from([1, 2, 4, 16, 64]),
    cluster_gpus=st.integers(0, 6),
)
def test_any_accepted_plan_fits_the_cluster(
    counts: dict[str, int], cpus: list[float], gpus: list[float], cluster_cpus: int,
    cluster_gpus: int,
) -> None:
    names = ["weak", "medium", "strong"]
    tiers = {n: T(num_cpus=c, num_gpus=g) for n, c, g in zip(names, cpus, gpus, strict=True)}
    available = {"CPU": cluster_cpus, "GPU": cluster_gpus}
    try:
        plan = plan_resources(counts, tiers, available)
    except ResourceError as err:
        shares = sum(counts[t] * tiers[t].num_gpus for t in counts)
        if cluster_gpus == 0:
            assert shares > 0 and "no GPU" in str(err)
            return
        need = int(re.search(r"need (\d+) GPUs", str(err)).group(1))  # type: ignore[union-attr]
        assert need > cluster_gpus and need >= math.ceil(shares - 1e-6)
        assert plan_resources(counts, tiers, dict(available, GPU=need)).gpus_used == need
        return
    assert plan.total_demand()["CPU"] <= cluster_cpus + 1e-9
    assert plan.gpus_used <= cluster_gpus
    assert all(g.used <= 1 + 1e-9 for g in plan.gpu_groups if g.gpus == 1)
    placed = _placed(plan)
    assert placed == {t: n for t, n in counts.items() if n and tiers[t].num_gpus}
    assert 0 <= plan.concurrency <= plan.hospitals
    for tier in counts:
        opts = plan.ray_options(tier)
        assert _is_ray_quantity(opts["num_cpus"]) and _is_ray_quantity(opts["num_gpus"])
        assert (opts["num_cpus"] > 0) == (tiers[tier].num_cpus > 0)


def _placed(plan: ResourcePlan) -> dict[str, int]:
    placed: dict[str, int] = {}
    for group in plan.gpu_groups:
        for tier, n in group.members.items():
            placed[tier] = placed.get(tier, 0) + n
    return placed


def test_auto_packing_one_process_per_cpu_beyond_the_cores() -> None:
    from chainlearn_ray.planning.resources import auto_packing

    assert auto_packing({"weak": 1, "medium": 1, "strong": 1}, 4) == {
        "weak": 1, "medium": 1, "strong": 1}
    packed = auto_packing({"weak": 16, "medium": 16, "strong": 16}, 16)
    assert packed == {"weak": 4, "medium": 4, "strong": 4}  # 5 processes per tier, 15 in all
    assert auto_packing({"weak": 3, "medium": 3, "strong": 4}, 2) == {
        "weak": 3, "medium": 3, "strong": 4}  # at least one process per tier
    assert auto_packing({"weak": 0, "medium": 5, "strong": 0}, 2)["medium"] == 3


def test_balance_spreads_cost_and_is_deterministic() -> None:
    from chainlearn_ray.planning.resources import arch_cost, balance

    costs = {"h00": 9.0, "h01": 1.0, "h02": 5.0, "h03": 4.0, "h04": 1.0}
    groups = balance(costs, 2)
    assert sorted(h for g in groups for h in g) == sorted(costs)
    loads = sorted(sum(costs[h] for h in g) for g in groups)
    assert loads == [10.0, 10.0]
    assert balance(costs, 2) == groups
    assert sorted(balance(costs, 9)) == [[h] for h in sorted(costs)]
    assert arch_cost("tiny_cnn:32") > arch_cost("tiny_cnn:8") > 0
    assert arch_cost("resnet50") > arch_cost("efficientnet_b0") > arch_cost("mobilenet_v3_small")
    with pytest.raises(ConfigError):
        balance(costs, 0)


def test_mixed_plan_bundles_and_demand() -> None:
    import dataclasses

    from chainlearn_ray.planning.planner import plan_resources
    from chainlearn_ray.planning.resources import TierResources

    one = TierResources(num_cpus=1)
    plan = plan_resources({"weak": 2, "medium": 2, "strong": 2},
                          {"weak": one, "medium": one, "strong": one}, {"CPU": 2.0},
                          coordinator_cpus=0.5)
    each = (2.0 - plan.coordinator_cpus) / 2
    mixed = dataclasses.replace(plan, mixed_processes=2, mixed_cpus=each)
    assert mixed.hospitals == 2
    assert mixed.bundles() == [{"CPU": plan.coordinator_cpus}, {"CPU": each}, {"CPU": each}]
    assert mixed.total_demand()["CPU"] == pytest.approx(2.0)
    assert "share 2 actor processes" in mixed.render()
