"""What a run keeps on disk as it goes: results, manifest, receipts and its chain journal.

Everything is rewritten atomically after the set-up and after every round, so an interrupted
run keeps what it finished; ``journal.json`` holds the signed transactions and receipts, with
how many of each there were at the end of every round, from which ``--resume`` rebuilds the
chain as it was at the end of the last round written (see
:mod:`chainlearn_ray.results.run_folder`). The manifest is written last: it is what says a
round is written, and the journal always reaches at least that far.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chainlearn_ray.errors import ConfigError
from chainlearn_ray.results.atomic import write_json_atomic, write_rows_atomic
from chainlearn_ray.results.manifest import build_manifest


@dataclass
class RunRecord:
    """The files of one run in ``out``.

    Attributes
    ----------
    conf:
        The config record (as the manifest holds it).
    facts:
        Manifest facts (run id, status, chain, data, hospitals, rounds completed, ...).
    rows:
        Every result row so far.
    prior_receipts:
        Receipts of the transactions a resumed run's chain journal replayed.
    """

    out: Path
    conf: dict[str, Any]
    facts: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    prior_receipts: list[dict[str, Any]] = field(default_factory=list)
    #: whether anything was written to ``out`` yet
    written: bool = False
    #: the signed transactions as of the last round written (a resumed run replays them)
    transactions: list[str] = field(default_factory=list)
    #: round -> (transactions, receipts) at its end
    boundaries: dict[int, tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def resume(cls, out: Path, conf: dict[str, Any], manifest: dict[str, Any]) -> RunRecord:
        """The record of the interrupted run in ``out``, as of its last round written."""
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(out / "results.parquet").to_pylist()
            journal = json.loads((out / "journal.json").read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--resume: cannot read the run in {out} ({exc}); start it again "
                              "with --overwrite") from None
        done = int(manifest.get("rounds_completed", 0) or 0)
        bounds = {int(k): (int(v[0]), int(v[1])) for k, v in journal.get("rounds", {}).items()}
        if done not in bounds:
            raise ConfigError(f"--resume: the chain journal in {out} does not reach round "
                              f"{done}; start the run again with --overwrite")
        n_tx, n_receipts = bounds[done]
        rows = [r for r in rows if int(r["round"]) <= done]  # nothing of a round not finished
        facts = {k: v for k, v in manifest.items()
                 if k not in ("config", "versions", "git_revision", "platform")}
        facts.setdefault("resumed_after_round", []).append(done)
        return cls(out, conf, facts, rows, list(journal.get("receipts", []))[:n_receipts],
                   written=True, transactions=list(journal.get("transactions", []))[:n_tx],
                   boundaries={k: v for k, v in bounds.items() if k <= done})

    def receipts(self, current: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """All receipts of the run: those replayed, then ``current`` (the live chain's)."""
        return [*self.prior_receipts, *current]

    def persist(self, receipts: list[dict[str, Any]] | None = None,
                journal: list[str] | None = None) -> None:
        """Rewrite results and manifest; with ``receipts`` (the live chain's) and ``journal``
        (every signed transaction of the live chain, replayed ones included) also
        ``receipts.json`` and ``journal.json``."""
        write_rows_atomic(self.rows, self.out / "results.parquet")
        self.written = True
        if receipts is not None:
            all_receipts = self.receipts(receipts)
            write_json_atomic(all_receipts, self.out / "receipts.json")
            if journal is not None:
                done = int(self.facts.get("rounds_completed", 0))
                self.boundaries[done] = (len(journal), len(all_receipts))
                write_json_atomic({"rounds": {str(k): list(v) for k, v in
                                              sorted(self.boundaries.items())},
                                   "transactions": journal, "receipts": all_receipts},
                                  self.out / "journal.json")
        # last: the manifest says the round is written, once everything else is
        write_json_atomic(build_manifest(self.conf, **self.facts), self.out / "manifest.json")

    def close(self, status: str, receipts: list[dict[str, Any]] | None = None,
              **facts: Any) -> None:
        """Write the run's final ``status`` (complete, interrupted, failed) and ``facts``;
        ``receipts``: every transaction so far (``journal.json`` stays at the last round)."""
        self.facts.update(status=status, **facts)
        write_json_atomic(build_manifest(self.conf, **self.facts), self.out / "manifest.json")
        if receipts is not None:
            write_json_atomic(self.receipts(receipts), self.out / "receipts.json")
