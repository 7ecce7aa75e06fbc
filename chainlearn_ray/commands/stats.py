"""Print the study's tables and paired tests as Markdown; write each as Parquet and CSV."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

#: Output stem, section title, and what is missing when a section is empty.
SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("main", "Main", "no final-ensemble rows of the metric for any study method"),
    ("ablations", "Ablations", "no `ablation:*` methods (or no baseline) in the results"),
    ("adversarial", "Adversarial", "no `attack:*` methods in the results"),
    ("defences", "Defences (trust mode)", "no trust-mode study rows (`attacker` marks)"),
    ("communication", "Communication", "no `comm_bytes_up` / `comm_bytes_down` rows"),
    ("gas", "Gas", "no `gas_<operation>` rows"),
    ("paired_tests", "Paired tests", "no other method has seeds in common with the baseline"),
    ("findings", "Findings", "no paired tests"),
    ("sensitivity", "Weight sensitivity", "nothing to compute"),
    ("privacy_utility", "Privacy–utility", "no `dp_target_epsilon` rows (no run set train.dp)"),
    ("privacy_spent", "Privacy spent (ε per hospital after each round)", "no `dp_epsilon` rows"),
)
#: Fixed confidence and ECE (fixed point) of the weight sensitivity section.
SENSITIVITY_CONFIDENCE = 8500
SENSITIVITY_ECE = 1000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``chainlearn stats``."""
    add_table_arguments(parser)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder for the Parquet and CSV tables (default RESULTS/stats)",
    )


def add_table_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments that choose what the tables show (shared with ``chainlearn report``)."""
    parser.add_argument(
        "results",
        type=Path,
        metavar="RESULTS",
        help="run folder, sweep folder, results .parquet file or dataset directory",
    )
    parser.add_argument("--metric", default="accuracy", help="headline metric (default accuracy)")
    parser.add_argument(
        "--baseline", default="ours", help="method the others are compared with (default ours)"
    )
    parser.add_argument(
        "--gwei", type=float, default=None,
        help="gas price in gwei (default: the study's, from the results' manifest, else the "
        "study default)")
    parser.add_argument(
        "--eth-usd", type=float, default=None,
        help="ETH price in US dollars (default: the study's, from the results' manifest, else "
        "the study default)")
    parser.add_argument(
        "--n-boot", type=int, default=10_000, help="bootstrap resamples (default 10000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")


def default_out(results: Path, leaf: str) -> Path:
    """``RESULTS/<leaf>``, or ``<folder of the file>/<leaf>`` when RESULTS is a file."""
    return (results.parent if results.is_file() else results) / leaf


def resolve_prices(args: argparse.Namespace) -> None:
    """Fill ``args.gwei`` / ``args.eth_usd`` left unset: from the ``study`` section of the
    results' ``manifest.json`` (a sweep's), else the study defaults, so ``stats`` prices gas as
    the study that produced the results did."""
    import json

    from chainlearn_ray.experiment.study import StudyConfig

    defaults = StudyConfig()
    study: dict[str, Any] = {}
    manifest = default_out(args.results, "manifest.json")
    if manifest.is_file():
        try:
            study = dict(json.loads(manifest.read_text()).get("study") or {})
        except (OSError, ValueError, AttributeError):
            logger.warning("could not read the study prices from %s", manifest)
    if args.gwei is None:
        args.gwei = float(study.get("gas_price_gwei", defaults.gas_price_gwei))
    if args.eth_usd is None:
        args.eth_usd = float(study.get("eth_price_usd", defaults.eth_price_usd))


def _present(name: str, table: pd.DataFrame, args: argparse.Namespace) -> str:
    """Markdown of one section's table, with readable columns and units."""
    import pandas as pd

    from chainlearn_ray.results import tables as t

    if name == "main":
        return t.to_markdown(table)
    if name.startswith("privacy_"):
        from chainlearn_ray.results.privacy import present_privacy

        return present_privacy(name, table, args.metric)
    if name in ("ablations", "adversarial"):
        view = pd.DataFrame(
            {
                "Dataset": table["dataset"],
                "Non-IID": table["alpha"].map(t.alpha_label),
                "Method": table["display"],
                "n": table["n"],
                "Accuracy": [
                    t.format_mean_std(m, s)
                    for m, s in zip(table["accuracy_mean"], table["accuracy_std"], strict=True)
                ],
                "Δ accuracy": table["accuracy_delta"],
                "ECE": [
                    t.format_mean_std(m, s)
                    for m, s in zip(table["ece_mean"], table["ece_std"], strict=True)
                ],
                "Δ ECE": table["ece_delta"],
            }
        )
        signed = {c: _signed for c in ("Δ accuracy", "Δ ECE")}
        return t.to_markdown(view, signed)
    if name == "defences":
        view = pd.DataFrame({
            "Dataset": table["dataset"], "Non-IID": table["alpha"].map(t.alpha_label),
            "Attack": table["display"], "n": table["n"],
            "Ensemble accuracy": [t.format_mean_std(m, s) for m, s in zip(
                table["accuracy_mean"], table["accuracy_std"], strict=True)],
            "Attacker weight": table["attacker_weight_mean"],
            "Attacker stake after (ETH)": table["attacker_stake_wei_mean"] / 1e18})
        def eth(v: float) -> str:  # no stake: a seed-protocol row (the one-step free-rider)
            return t.DASH if v != v else f"{v:.6f}"

        return t.to_markdown(view, {"Attacker weight": _thousands,
                                    "Attacker stake after (ETH)": eth})
    if name == "communication":
        view = table.rename(
            columns={
                "dataset": "Dataset",
                "display": "Method",
                "hospital_rounds": "hospital-rounds",
                "bytes_up": "Up",
                "bytes_down": "Down",
                "bytes_total": "Total",
                "serve_per_query": "Serving / query",
            }
        ).drop(columns=["method"])
        note = ("Mean bytes per hospital per round crossing the hospital's boundary. Up: model "
                "states (FedAvg, FedProx), logits on the public set (FedMD), or the signed "
                "submission plus the softmax outputs on the evaluation split the aggregator "
                "ensembles (Ours). Down: the global model, the consensus, or the 32-byte "
                "weights the ensemble reads. Serving / query: bytes on the network to answer "
                "one query with the final predictor (an ensemble sends the image to every "
                "member and gets its probabilities back; a single model answers where it is "
                "held).\n\n")
        cols = ("Up", "Down", "Total", "Serving / query")
        return note + t.to_markdown(view, {c: t.format_bytes for c in cols})
    if name == "gas":
        view = table.assign(Method=table["method"].map(t.display_name)).rename(
            columns={
                "operation": "Operation",
                "gas_mean": "Mean gas",
                "gas_std": "Std",
                "gas_min": "Min",
                "gas_max": "Max",
                "eth": "ETH",
                "usd": "USD",
            }
        )
        view = view[["Method", "Operation", "n", "Mean gas", "Std", "Min", "Max", "ETH", "USD"]]
        gas = _thousands
        fmts: dict[str, Callable[[Any], str]] = {"Mean gas": gas, "Std": gas, "Min": gas}
        fmts.update({"Max": gas, "USD": t.format_usd})
        fmts["ETH"] = lambda v: f"{v:.6f}"
        note = f"Priced at {args.gwei:g} gwei and {args.eth_usd:,.2f} USD/ETH.\n\n"
        return note + t.to_markdown(view, fmts)
    if name == "paired_tests":
        from chainlearn_ray.results.stats import ADJUSTMENT, MIN_PAIRS
        from chainlearn_ray.results.tables import DASH

        view = pd.DataFrame(
            {
                "Dataset": table["dataset"],
                "Non-IID": table["alpha"].map(t.alpha_label),
                "Method": table["display"],
                "n": table["n"],
                "Δ mean": table["mean_diff"],
                "95% CI (bootstrap)": [
                    DASH if lo != lo else f"[{_signed(lo)}, {_signed(hi)}]"
                    for lo, hi in zip(table["ci_low"], table["ci_high"], strict=True)
                ],
                "r (rank-biserial)": table["rank_biserial"],
                "Wilcoxon p": table["wilcoxon_p"],
                f"Wilcoxon p ({ADJUSTMENT})": table["wilcoxon_p_holm"],
                "d_z": table["effect_dz"],
                "t-test p": table["ttest_p"],
                f"t-test p ({ADJUSTMENT})": table["ttest_p_holm"],
                "min p": table["min_p"],
                "Note": table["note"],
            }
        )
        test_fmts: dict[str, Callable[[Any], str]] = {
            c: _signed for c in ("Δ mean", "r (rank-biserial)", "d_z")}
        test_fmts.update({c: t.format_p for c in (
            "Wilcoxon p", f"Wilcoxon p ({ADJUSTMENT})", "t-test p", f"t-test p ({ADJUSTMENT})",
            "min p")})
        base = t.display_name(args.baseline)
        note = (
            f"Differences are method − {base} in {args.metric}, paired by seed; pooled rows are "
            f"blocked by seed (each seed's differences averaged over α first, so n counts "
            f"seeds). Exact two-sided Wilcoxon signed-rank test with its rank-biserial effect "
            f"size r; 'min p' is the smallest p it can reach with n non-zero pairs (2/2^n): "
            f"with n ≤ 5 no result can be significant at 0.05. The paired t-test (effect size "
            f"Cohen's d_z) and the bootstrap interval are shown only from {MIN_PAIRS} pairs "
            f"on: below that an interval is little more than the range of the differences. "
            f"{ADJUSTMENT}-adjusted p-values control the family-wise error within the table's "
            f"cell rows, and separately within its pooled rows.\n\n"
        )
        return note + t.to_markdown(view, test_fmts)
    if name == "findings":
        from chainlearn_ray.results.findings import findings_markdown

        return findings_markdown(table)
    if name == "sensitivity":
        from chainlearn_ray.results.sensitivity import sensitivity_wide

        full = sensitivity_wide(table, "weight")
        expected = sensitivity_wide(table, "expected_weight")
        floor = sensitivity_wide(table, "floor_weight")
        probs = dict(zip(table["tier"], table["attendance"], strict=False))
        for frame in (expected, floor):
            frame.insert(1, "p", [probs[tier.lower()] for tier in frame["Tier"]])
        p_fmt: dict[str, Callable[[Any], str]] = {"p": lambda v: f"{v:g}"}
        return (
            f"Weight (fixed point, 10000 = 1.0) at confidence {SENSITIVITY_CONFIDENCE} and ECE "
            f"{SENSITIVITY_ECE} after r rounds; computed from the formula, not measured."
            "\n\nEvery round attended:\n\n"
            + t.to_markdown(full, digits=0)
            + "\n\nDropout, expected weight over Binomial(r, p) rounds attended:\n\n"
            + t.to_markdown(expected, p_fmt, digits=1)
            + "\n\nDropout, weight at floor(p·r) rounds attended:\n\n"
            + t.to_markdown(floor, p_fmt, digits=0)
        )
    return t.to_markdown(table)


def _signed(value: Any) -> str:
    """A difference with an explicit sign (``+0.012``), NaN -> ``"—"``."""
    from chainlearn_ray.results.tables import DASH

    try:
        v = float(value)
    except (TypeError, ValueError):
        return DASH
    return DASH if v != v else f"{v:+.3f}"


def _thousands(value: Any) -> str:
    """An integer-like number with thousands separators (``252,464``), NaN -> ``"—"``."""
    from chainlearn_ray.results.tables import DASH

    v = float(value)
    return DASH if v != v else f"{v:,.0f}"


def build_tables(df: pd.DataFrame, args: argparse.Namespace) -> dict[str, pd.DataFrame]:
    """Every section's numeric table (empty frames for sections without data)."""
    import pandas as pd

    from chainlearn_ray.results import privacy, stats, tables
    from chainlearn_ray.results.communication import communication_table
    from chainlearn_ray.results.defences import defence_table
    from chainlearn_ray.results.sensitivity import sensitivity_table

    main_methods = [m for m in df["method"].unique() if tables.is_main_method(m)]
    main = [stats.summary_table(df, main_methods, m) for m in main_metrics(args.metric)]
    built = {
        "main": pd.concat([t for t in main if not t.empty] or main[:1], ignore_index=True),
        "ablations": stats.ablation_table(df, args.baseline),
        "adversarial": stats.adversarial_table(df, args.baseline),
        "defences": defence_table(df),
        "communication": communication_table(df),
        "gas": tables.gas_table(df, args.gwei, args.eth_usd),
        "paired_tests": stats.paired_tests(
            df, args.baseline, args.metric, n_boot=args.n_boot, seed=args.seed
        ),
        "sensitivity": sensitivity_table(SENSITIVITY_CONFIDENCE, SENSITIVITY_ECE),
        "privacy_utility": privacy.privacy_utility_table(df, args.metric),
        "privacy_spent": privacy.privacy_spent_table(df),
    }
    built["findings"] = built["paired_tests"]
    return built


def main_metrics(metric: str) -> tuple[str, ...]:
    """The main table's metrics: the headline ``metric``, then balanced accuracy and macro-F1
    (a one-class model's accuracy can look fine; these two cannot)."""
    return tuple(dict.fromkeys((metric, "balanced_accuracy", "macro_f1")))


#: Readable names of the main table's metrics.
METRIC_TITLES = {"accuracy": "Accuracy", "balanced_accuracy": "Balanced accuracy",
                 "macro_f1": "Macro-F1", "ece": "ECE", "confidence": "Confidence"}


def _main_markdown(table: pd.DataFrame, args: argparse.Namespace) -> str:
    """One method × cell table per metric of :func:`main_metrics` that has rows."""
    from chainlearn_ray.results import tables

    parts = []
    for metric in main_metrics(args.metric):
        part = table[table["metric"] == metric]
        if not part.empty:
            parts.append(f"**{METRIC_TITLES.get(metric, metric)}**\n\n"
                         + _present("main", tables.summary_wide(part), args))
    return "\n\n".join(parts)


def sections(
    df: pd.DataFrame, args: argparse.Namespace
) -> list[tuple[str, str, pd.DataFrame, str]]:
    """Every section as ``(name, heading, numeric table, Markdown)``; the Markdown of a section
    without data says why it is skipped. ``args`` as :func:`add_arguments` parses them."""

    resolve_prices(args)
    built = build_tables(df, args)
    out = []
    for name, title, missing in SECTIONS:
        table = built[name]
        heading = title
        if name == "main":
            heading += " (each method's final predictor; Majority predicts the training majority "
            heading += "class)"
        if table.empty:
            text = f"_Section skipped: {missing}._"
        elif name == "main":
            text = _main_markdown(table, args)
        else:
            text = _present(name, table, args)
        out.append((name, heading, table, text))
    return out


def describe(df: pd.DataFrame) -> str:
    """One line: rows, runs, datasets and seeds of a results frame."""
    seeds = sorted(df["seed"].unique())
    return (
        f"{len(df):,} rows; {df['run_id'].nunique()} run(s); datasets "
        f"{', '.join(sorted(df['dataset'].unique())) or '—'}; seeds "
        f"{', '.join(str(s) for s in seeds) or '—'}; mean ± sample std (ddof 1) over seeds."
    )


def main(args: argparse.Namespace) -> int:
    """Run ``chainlearn stats``: print Markdown tables, write Parquet + CSV; return 0."""
    from chainlearn_ray.results.store import read_results, write_table_atomic

    df = read_results(args.results)
    out_dir = args.out or default_out(args.results, "stats")
    lines = [f"# Results: {args.results}", "", describe(df)]
    written: list[Path] = []
    for name, heading, table, text in sections(df, args):
        lines += ["", f"## {heading}", "", text]
        for suffix in () if name == "findings" else (".parquet", ".csv"):  # paired_tests' data
            path = out_dir / f"{name}{suffix}"
            if table.empty:
                if path.is_file():
                    path.unlink()
            else:
                written.append(write_table_atomic(table, path))
    sys.stdout.write("\n".join(lines) + "\n")
    print(f"wrote {len(written)} table files to {out_dir}", file=sys.stderr)
    logger.info("stats tables written to %s", out_dir)
    return 0
