"""Names of the study's methods, ablations and attacks as they appear in the results table."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Final

from chainlearn_ray.results.rows import RunKey
from chainlearn_ray.results.rows import result_row as federation_row
from chainlearn_ray.results.schema import ALL

MAJORITY: Final = "majority"
CENTRALIZED: Final = "centralized"
LOCAL_WEAK: Final = "local_weak"
LOCAL_MEDIUM: Final = "local_medium"
LOCAL_STRONG: Final = "local_strong"
LOCAL_BEST: Final = "local_best"
FEDAVG: Final = "fedavg"
FEDPROX: Final = "fedprox"
FEDMD: Final = "fedmd"
EQUAL_WEIGHT: Final = "equal_weight"
OURS: Final = "ours"
OURS_DROPOUT: Final = "ours_dropout"
OURS_BALACC: Final = "ours_balacc"
#: Ours on a trust-mode deployment (verifier-timed PoC, stakes, commit-reveal, audits).
OURS_TRUST: Final = "ours_trust"

#: Ablations that reuse Ours' trained models (weights recomputed, nothing retrained).
POSTHOC_ABLATIONS: Final[tuple[str, ...]] = ("no_capmul", "no_conf", "no_ece", "no_bonus")
#: Every ablation; ``no_poc`` retrains all hospitals on one architecture.
ABLATIONS: Final[tuple[str, ...]] = (*POSTHOC_ABLATIONS, "no_poc")
#: Attack scenarios.
ATTACKS: Final[tuple[str, ...]] = ("lazy", "inflated", "spoof_no_poc", "spoof_poc")

#: Local-model methods by tier label.
LOCAL_BY_TIER: Final[dict[str, str]] = {
    "weak": LOCAL_WEAK, "medium": LOCAL_MEDIUM, "strong": LOCAL_STRONG,
}


def ablation_method(name: str) -> str:
    """Method name of an ablation: ``"no_ece"`` -> ``"ablation:no_ece"``."""
    return f"ablation:{name}"


def attack_method(name: str) -> str:
    """Method name of an attack: ``"lazy"`` -> ``"attack:lazy"``."""
    return f"attack:{name}"


#: Every method name a results table may hold, in presentation order.
METHODS: Final[tuple[str, ...]] = (
    MAJORITY, CENTRALIZED, LOCAL_WEAK, LOCAL_MEDIUM, LOCAL_STRONG, LOCAL_BEST, FEDAVG, FEDPROX,
    FEDMD, EQUAL_WEIGHT, OURS, OURS_DROPOUT, OURS_BALACC,
    *(ablation_method(a) for a in ABLATIONS),
    *(attack_method(a) for a in ATTACKS),
)


def result_row(key: RunKey, method: str, round_: int, hospital: str, tier: str, metric: str,
               value: float) -> dict[str, Any]:
    """One tidy row of :data:`chainlearn_ray.results.schema.SCHEMA`.

    Parameters
    ----------
    key:
        The run's identifying columns; its ``method`` is replaced by ``method``.
    method, round_, hospital, tier, metric, value:
        The remaining columns (``tier`` is a tier label or ``""``).
    """
    return federation_row(replace(key, method=method), round_, hospital, tier, metric, value)


def budget_rows(key: RunKey, method: str, rounds: int, epochs: int) -> list[dict[str, Any]]:
    """The training budget a method ran under: ``budget_rounds``, ``budget_epochs`` (local
    epochs per round) and ``budget_total_epochs``, as round-0 rows of hospital ``"all"``."""
    return [
        result_row(key, method, 0, ALL, "", "budget_rounds", rounds),
        result_row(key, method, 0, ALL, "", "budget_epochs", epochs),
        result_row(key, method, 0, ALL, "", "budget_total_epochs", rounds * epochs),
    ]
