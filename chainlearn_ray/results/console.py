"""Plain-text tables for the terminal: one round's outcome, any header and rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chainlearn_ray.protocol.rounds import (
    ATTENDED,
    RoundOutcome,
)


def format_round(outcome: RoundOutcome) -> str:
    """A compact progress block for one round."""
    ens = outcome.ensemble
    head = (
        f"round {outcome.round}: {outcome.participants} submitted, "
        f"{outcome.round_seconds:.2f}s wall (train {outcome.train_seconds:.2f}s, "
        f"chain {outcome.chain_seconds:.2f}s)"
    )
    if "accuracy" in ens:
        head += f", ensemble acc {ens['accuracy']:.3f} F1 {ens.get('macro_f1', 0.0):.3f}"
    lines = [head]
    for h in outcome.hospitals:
        if h.status == ATTENDED:
            lines.append(
                f"  {h.hospital_id} {h.tier:<6} acc {h.accuracy:.3f} conf {h.confidence:.3f} "
                f"ece {h.ece:.3f} weight {h.weight:>5} sim {h.simulated_seconds:.1f}s"
                + (f" ε {h.dp_epsilon:.2f}" if h.dp_epsilon is not None else "")
            )
        else:
            detail = f" ({h.error})" if h.error else ""
            lines.append(f"  {h.hospital_id} {h.tier:<6} {h.status}{detail}")
    return "\n".join(lines)


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table."""
    cells = [[str(c) for c in header]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out.extend("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells[1:])
    return "\n".join(out)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)
