"""Tests of the atomic results store and the layouts read_results accepts."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from chainlearn_ray.errors import ChainlearnError, DataError
from chainlearn_ray.results import store
from chainlearn_ray.results.schema import COLUMNS, SCHEMA, rows_to_frame


def _frame(dataset: str = "pneumoniamnist", alpha: float = 0.5, seed: int = 42) -> pd.DataFrame:
    rows = []
    for method, acc in (("ours", 0.81), ("fedavg", 0.77)):
        rows.append(
            dict(
                run_id=f"{dataset}-{alpha}-{seed}",
                dataset=dataset,
                alpha=alpha,
                seed=seed,
                method=method,
                round=5,
                hospital="ensemble",
                tier="",
                metric="accuracy",
                value=acc,
            )
        )
    rows.append(
        dict(
            run_id=f"{dataset}-{alpha}-{seed}",
            dataset=dataset,
            alpha=alpha,
            seed=seed,
            method="ours",
            round=1,
            hospital="h00",
            tier="weak",
            metric="comm_bytes_up",
            value=1234.0,
        )
    )
    return rows_to_frame(rows)


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]


def test_parquet_round_trip_keeps_schema_and_values(tmp_path: Path) -> None:
    frame = _frame()
    path = store.write_parquet_atomic(frame, tmp_path / "run" / "results.parquet")
    assert pq.read_schema(path).remove_metadata().equals(SCHEMA)
    back = store.read_results(path)
    pd.testing.assert_frame_equal(back, frame)
    assert list(back.columns) == list(COLUMNS)
    assert back["seed"].dtype == np.int64 and back["value"].dtype == np.float64
    assert _no_temp_files(tmp_path)


def test_write_rejects_frame_missing_a_column(tmp_path: Path) -> None:
    frame = _frame().drop(columns=["metric"])
    with pytest.raises(DataError, match="metric"):
        store.write_parquet_atomic(frame, tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()
    assert _no_temp_files(tmp_path)


def test_write_rejects_wrong_value_type(tmp_path: Path) -> None:
    frame = _frame()
    frame["value"] = frame["value"].astype(object)
    frame.loc[0, "value"] = "not a number"
    with pytest.raises(DataError, match="value"):
        store.write_parquet_atomic(frame, tmp_path / "x.parquet")


def test_failed_parquet_write_leaves_previous_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "results.parquet"
    old = _frame(seed=1)
    store.write_parquet_atomic(old, path)
    before = path.read_bytes()

    def failing_write(table: object, where: object, **kwargs: object) -> None:
        where.write(b"PAR1 partial garbage")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(store.pq, "write_table", failing_write)
    with pytest.raises(OSError, match="disk full"):
        store.write_parquet_atomic(_frame(seed=2), path)
    assert path.read_bytes() == before
    assert _no_temp_files(tmp_path)
    monkeypatch.undo()
    pd.testing.assert_frame_equal(store.read_results(path), old)


def test_failed_json_write_leaves_previous_file_intact(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    store.write_json_atomic({"b": 1, "a": [1, 2]}, path)
    before = path.read_text()
    with pytest.raises(TypeError):
        store.write_json_atomic({"bad": object()}, path)
    assert path.read_text() == before
    assert _no_temp_files(tmp_path)


def test_json_is_sorted_indented_and_newline_terminated(tmp_path: Path) -> None:
    path = store.write_json_atomic(
        {"zeta": np.int64(3), "alpha": {"y": np.float64(0.5), "x": np.arange(2)}},
        tmp_path / "sub" / "manifest.json",
    )
    text = path.read_text()
    assert text == (
        '{\n  "alpha": {\n    "x": [\n      0,\n      1\n    ],\n    "y": 0.5\n  },\n'
        '  "zeta": 3\n}\n'
    )
    assert json.loads(text) == {"alpha": {"x": [0, 1], "y": 0.5}, "zeta": 3}


def test_read_run_folder(tmp_path: Path) -> None:
    frame = _frame()
    store.write_parquet_atomic(frame, tmp_path / store.RUN_RESULTS)
    store.write_json_atomic({"run": 1}, tmp_path / store.MANIFEST)
    # A stats folder written next to the results must not be read as results.
    store.write_parquet_atomic(_frame(seed=9), tmp_path / "stats" / "other.parquet")
    pd.testing.assert_frame_equal(store.read_results(tmp_path), frame)


def test_sweep_cells_layouts_and_replacement(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    a = _frame("pneumoniamnist", 0.5, 42)
    b = _frame("pneumoniamnist", 0.1, 42)
    c = _frame("dermamnist", 0.5, 142)
    store.append_cell(a, sweep, "pneumoniamnist", "pneumoniamnist_a0.5_s42")
    store.append_cell(b, sweep, "pneumoniamnist", "pneumoniamnist_a0.1_s42")
    path = store.append_cell(c, sweep, "dermamnist", "dermamnist_a0.5_s142")
    assert path == sweep / "results" / "dermamnist" / "dermamnist_a0.5_s142.parquet"
    store.write_json_atomic({"cells": 3}, sweep / store.MANIFEST)
    assert store.finished_cells(sweep) == {
        "pneumoniamnist_a0.5_s42",
        "pneumoniamnist_a0.1_s42",
        "dermamnist_a0.5_s142",
    }

    whole = store.read_results(sweep)
    assert len(whole) == len(a) + len(b) + len(c)
    assert set(whole["dataset"]) == {"pneumoniamnist", "dermamnist"}
    # The results/ folder itself and a single partition are dataset directories.
    pd.testing.assert_frame_equal(store.read_results(sweep / "results"), whole)
    part = store.read_results(sweep / "results" / "pneumoniamnist")
    assert set(part["alpha"]) == {0.1, 0.5} and set(part["dataset"]) == {"pneumoniamnist"}

    # Re-writing a cell replaces it rather than adding rows.
    changed = a.assign(value=a["value"] + 1.0)
    store.append_cell(changed, sweep, "pneumoniamnist", "pneumoniamnist_a0.5_s42")
    again = store.read_results(sweep)
    assert len(again) == len(whole)
    sel = again[(again["alpha"] == 0.5) & (again["dataset"] == "pneumoniamnist")]
    assert sorted(sel["value"]) == sorted(changed["value"])
    assert _no_temp_files(sweep)


def test_append_cell_fills_empty_dataset_and_rejects_foreign_rows(tmp_path: Path) -> None:
    frame = _frame().assign(dataset="")
    store.append_cell(frame, tmp_path, "bloodmnist", "cell1")
    assert set(store.read_results(tmp_path)["dataset"]) == {"bloodmnist"}
    with pytest.raises(DataError, match="dermamnist"):
        store.append_cell(_frame("dermamnist"), tmp_path, "bloodmnist", "cell2")
    with pytest.raises(DataError, match="file name"):
        store.append_cell(_frame(), tmp_path, "pneumoniamnist", "../escape")


def test_temp_files_are_not_read_or_counted(tmp_path: Path) -> None:
    store.append_cell(_frame(), tmp_path, "pneumoniamnist", "cell1")
    part = tmp_path / "results" / "pneumoniamnist"
    (part / ".cell2.parquet.abc.tmp").write_bytes(b"partial")
    (part / ".hidden.parquet").write_bytes(b"partial")
    assert store.finished_cells(tmp_path) == {"cell1"}
    assert len(store.read_results(tmp_path)) == len(_frame())


def test_finished_cells_of_missing_sweep_is_empty(tmp_path: Path) -> None:
    assert store.finished_cells(tmp_path / "nothing") == set()


@pytest.mark.parametrize("layout", ["missing", "empty_dir", "text_file", "empty_sweep"])
def test_read_results_without_results_says_what_it_expected(tmp_path: Path, layout: str) -> None:
    target = tmp_path / "target"
    if layout == "empty_dir":
        target.mkdir()
    elif layout == "text_file":
        target = tmp_path / "notes.txt"
        target.write_text("hello")
    elif layout == "empty_sweep":
        (target / "results").mkdir(parents=True)
    with pytest.raises(ChainlearnError, match=r"results\.parquet"):
        store.read_results(target)


def test_read_results_rejects_non_results_parquet(tmp_path: Path) -> None:
    path = tmp_path / "other.parquet"
    pd.DataFrame({"x": [1, 2]}).to_parquet(path)
    with pytest.raises(DataError, match="lacks the column"):
        store.read_results(path)


def test_manifest_reads_git_and_versions_once_per_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from chainlearn_ray.results import manifest

    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "a.txt").write_text("a\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "a"], check=True)
    first = manifest.git_revision(repo)
    assert len(first) == 40
    # edited later in the same process: still the revision the process started from
    (repo / "a.txt").write_text("b\n")
    assert manifest.git_revision(repo) == first
    versions = manifest.package_versions()
    assert versions["chainlearn_ray"] and "numpy" in versions
    versions["numpy"] = "edited"  # a caller's copy: the next manifest is unaffected
    calls: list[object] = []
    monkeypatch.setattr(manifest.metadata, "version", lambda name: calls.append(name))
    again = manifest.build_manifest({"k": 1}, status="x")
    assert again["versions"]["numpy"] != "edited" and calls == []
    assert again["config"] == {"k": 1} and again["status"] == "x"


def test_rows_convert_as_frames_do_and_are_written_without_pandas(tmp_path: Path) -> None:
    from chainlearn_ray.results.atomic import write_rows_atomic
    from chainlearn_ray.results.schema import coerce, rows_to_table

    rows = [
        dict(run_id="r", dataset="d", alpha=1.0, seed=42, method="ours", round=1,
             hospital="h00", tier="weak", metric="accuracy", value=0.5),
        dict(run_id="rü", dataset="d", alpha=np.float64(0.5), seed=np.int64(7), method="ours",
             round=2.0, hospital=None, tier=float("nan"), metric="w", value=np.int64(3)),
        dict(run_id="r", dataset="d", alpha=1, seed=1, method="m", round=None, hospital="all",
             tier="", metric="x", value=None, extra="not a column"),
    ]
    # the rows path converts every value as the frame path does
    expected = coerce(pd.DataFrame(rows, columns=list(COLUMNS)))
    pd.testing.assert_frame_equal(rows_to_frame(rows), expected)
    assert rows_to_table(rows).schema.equals(SCHEMA)
    assert rows_to_frame([]).shape == (0, len(COLUMNS))
    with pytest.raises(DataError, match="'seed'"):
        rows_to_table([dict(rows[0], seed="forty-two")])
    # the file equals the frame writer's
    path = write_rows_atomic(rows, tmp_path / "run" / "results.parquet")
    pd.testing.assert_frame_equal(store.read_results(path), store.read_results(
        store.write_parquet_atomic(expected, tmp_path / "frame" / "results.parquet")))
    assert _no_temp_files(tmp_path)
    # a run's driver writes its results without loading pandas
    script = ("import sys\nfrom chainlearn_ray.results.atomic import write_rows_atomic\n"
              f"write_rows_atomic({rows[:1]!r}, {str(tmp_path / 'p.parquet')!r})\n"
              "print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def _sweep_of_two_datasets(root: Path) -> pd.DataFrame:
    store.append_cell(_frame("pneumoniamnist", 0.5, 42), root, "pneumoniamnist", "p_a0.5_s42")
    store.append_cell(_frame("pneumoniamnist", 0.1, 42), root, "pneumoniamnist", "p_a0.1_s42")
    store.append_cell(_frame("dermamnist", 0.5, 142), root, "dermamnist", "d_a0.5_s142")
    return store.read_results(root)


def test_sweep_dataset_reads_in_pandas_pyarrow_duckdb_and_polars(tmp_path: Path) -> None:
    ours = _sweep_of_two_datasets(tmp_path)
    folder = tmp_path / "results"
    expected = sorted(zip(ours["dataset"], ours["alpha"], ours["value"], strict=True))

    def same(frame: pd.DataFrame) -> None:
        assert list(frame.columns).count("dataset") == 1
        got = sorted(zip(frame["dataset"].astype(str), frame["alpha"], frame["value"],
                         strict=True))
        assert got == expected

    same(pd.read_parquet(folder))
    import pyarrow.dataset as ds

    same(ds.dataset(folder, format="parquet").to_table().to_pandas())
    readers = 2
    try:
        import duckdb
    except ImportError:
        pass
    else:
        same(duckdb.sql(f"SELECT * FROM read_parquet('{folder}/**/*.parquet')").df())
        readers += 1
    try:
        import polars as pl
    except ImportError:
        pass
    else:
        same(pl.read_parquet(folder / "**" / "*.parquet").to_pandas())
        readers += 1
    print(f"read by {readers} libraries")


def test_legacy_dataset_folders_still_read(tmp_path: Path) -> None:
    frame = _frame("pneumoniamnist").assign(dataset="")
    legacy = tmp_path / "results" / "dataset=pneumoniamnist" / "cell1.parquet"
    store.write_parquet_atomic(frame, legacy)
    assert set(store.read_results(tmp_path)["dataset"]) == {"pneumoniamnist"}
    assert store.finished_cells(tmp_path) == {"cell1"}


def test_results_files_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = store.write_parquet_atomic(_frame(), tmp_path / "r.parquet")
        manifest = store.write_json_atomic({"a": 1}, tmp_path / "manifest.json")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        assert stat.S_IMODE(manifest.stat().st_mode) == 0o644
        os.umask(0o077)
        private = store.write_json_atomic({"a": 1}, tmp_path / "private.json")
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    finally:
        os.umask(old)



def test_a_folder_of_run_folders_reads_past_its_stats_tables(tmp_path: Path) -> None:
    """``chainlearn stats`` on a folder of runs writes its tables into ``stats/`` there; the
    next read of the folder takes the runs only."""
    for seed in (1, 2):
        run = tmp_path / f"s{seed}"
        run.mkdir()
        store.write_parquet_atomic(_frame(seed=seed), run / "results.parquet")
    (tmp_path / "stats").mkdir()
    tables = pd.DataFrame({"method": ["ours"], "mean": [0.8]})
    tables.to_parquet(tmp_path / "stats" / "main.parquet")
    frame = store.read_results(tmp_path)
    assert sorted(frame["seed"].unique()) == [1, 2] and len(frame) == 6
