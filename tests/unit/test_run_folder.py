"""A run's results folder: refused, resumed or overwritten only as asked, one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from chainlearn_ray.commands.run import resume_command
from chainlearn_ray.errors import ConfigError
from chainlearn_ray.hospital.checkpoints import publish, rewind_checkpoints, tagged_rounds
from chainlearn_ray.results.run_folder import (
    check_out,
    check_resumable,
    check_writable,
    clear_run,
    config_differences,
    holds_run,
    remove_if_empty,
)


def _run_in(folder: Path, status: str = "interrupted", rounds: int = 1) -> Path:
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({
        "config": {"seed": 42, "train": {"rounds": 3, "epochs": 2}}, "status": status,
        "rounds_completed": rounds}))
    (folder / "results.parquet").write_bytes(b"x")
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "h00.pt").write_bytes(b"model")
    return folder


def test_a_folder_holding_a_run_is_refused_unless_asked(tmp_path: Path) -> None:
    run = _run_in(tmp_path / "run")
    with pytest.raises(ConfigError, match=r"holds a run: pass --resume .* --overwrite"):
        check_out(run)
    check_out(run, "resume")
    check_out(run, "overwrite")
    assert (run / "checkpoints" / "h00.pt").read_bytes() == b"model"  # checks delete nothing
    check_out(tmp_path / "new")  # a new folder is fine, and is not created by the check
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    check_out(tmp_path / "empty")
    with pytest.raises(ConfigError, match="no run to resume"):
        check_out(tmp_path / "empty", "resume")


def test_out_on_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match=r"--out .*f is a file: pass a folder"):
        check_writable(tmp_path / "f")
    with pytest.raises(ConfigError, match="lies under the file"):
        check_writable(tmp_path / "f" / "run")


def test_out_on_a_read_only_place_is_one_line() -> None:
    ro = Path(tempfile.mkdtemp(prefix="chainlearn-ro-"))  # outside tmp_path: others may enter
    try:
        ro.chmod(0o555)
        if os.geteuid() != 0:
            with pytest.raises(ConfigError, match="cannot be written") as info:
                check_writable(ro / "run")
            message = str(info.value)
        else:  # root writes through permissions: check as an unprivileged user
            code = ("import sys; from chainlearn_ray.errors import ConfigError\n"
                    "from chainlearn_ray.results.run_folder import check_writable\n"
                    "try: check_writable(sys.argv[1])\n"
                    "except ConfigError as e: print(e); sys.exit(2)\n")
            try:
                done = subprocess.run(
                    [sys.executable, "-c", code, str(ro / "run")], capture_output=True,
                    text=True, user=65534, cwd="/", env={**os.environ, "HOME": "/"},
                    check=False)
            except OSError as exc:  # the interpreter itself is private to root
                pytest.skip(f"cannot run as an unprivileged user here: {exc}")
            if done.returncode not in (0, 2) or "No module named" in done.stderr:
                pytest.skip(f"cannot run as an unprivileged user here: {done.stderr[-200:]}")
            assert done.returncode == 2, done.stdout
            message = done.stdout.strip()
        assert "cannot be written" in message and "\n" not in message
        assert not list(ro.iterdir())
    finally:
        ro.chmod(0o755)
        shutil.rmtree(ro)


def test_resume_names_what_differs(tmp_path: Path) -> None:
    manifest = json.loads((_run_in(tmp_path / "run") / "manifest.json").read_text())
    assert check_resumable(manifest, manifest["config"], tmp_path / "run") == 1
    changed = {"seed": 7, "train": {"rounds": 3, "epochs": 2}}
    with pytest.raises(ConfigError, match=r"config differs .*\(seed: 42 -> 7\)"):
        check_resumable(manifest, changed, tmp_path / "run")
    assert config_differences({"a": {"b": [1, 2]}}, {"a": {"b": (1, 2)}}) == []
    assert config_differences({"a": {"b": 1}}, {"a": {}}) == ["a.b: 1 -> '<unset>'"]
    done = {**manifest, "status": "complete"}
    with pytest.raises(ConfigError, match="complete; nothing to resume"):
        check_resumable(done, manifest["config"], tmp_path / "run")


def test_overwrite_clears_the_run_files_only(tmp_path: Path) -> None:
    run = _run_in(tmp_path / "run")
    (run / "notes.txt").write_text("mine")
    assert holds_run(run)
    clear_run(run)
    assert not holds_run(run)
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]
    remove_if_empty(run)
    assert run.exists()  # not empty: kept
    (run / "notes.txt").unlink()
    remove_if_empty(run)
    assert not run.exists()


def test_checkpoints_rewind_to_the_round_written(tmp_path: Path) -> None:
    def save(h: str, round_: int) -> None:
        tmp = tmp_path / f"{h}.pt.tmp"
        tmp.write_text(f"{h} after round {round_}")
        publish(tmp, tmp_path, h, round_)

    for r in (0, 1, 2, 3, 4):
        save("h00", r)
    save("h01", 0)
    save("h01", 3)  # absent in rounds 1 and 2 (Ours-Dropout)
    assert tagged_rounds(tmp_path, "h00") == [2, 3, 4]  # the three latest are kept
    # round 2 was written; round 3 had finished in every process, and round 4 had started
    rewind_checkpoints(tmp_path, ["h00", "h01"], 2)
    assert (tmp_path / "h00.pt").read_text() == "h00 after round 2"
    assert (tmp_path / "h01.pt").read_text() == "h01 after round 0"
    assert tagged_rounds(tmp_path, "h00") == [2]
    with pytest.raises(ConfigError, match="no checkpoint of h00 at round 1"):
        rewind_checkpoints(tmp_path, ["h00"], 1)


def test_resume_command_repeats_the_run(tmp_path: Path) -> None:
    argv = ["run", "--dataset", "synthetic", "--out", "old", "--overwrite", "--seed", "7"]
    assert resume_command(tmp_path / "r", argv) == (
        f"chainlearn run --dataset synthetic --seed 7 --out {tmp_path / 'r'} --resume")


def test_a_resumed_record_stops_where_the_manifest_does(tmp_path: Path) -> None:
    from chainlearn_ray.results.run_record import RunRecord

    def rows(round_: int) -> list[dict[str, object]]:
        return [{"run_id": "r", "dataset": "syn", "alpha": 0.5, "seed": 1, "method": "ours",
                 "round": round_, "hospital": "h00", "tier": "weak", "metric": "m",
                 "value": 1.0}]

    record = RunRecord(tmp_path, {"seed": 1}, {"status": "running", "rounds_completed": 0})
    record.rows = rows(0)
    record.persist([{"op": "deploy"}], ["0xaa"])
    record.rows += rows(1)
    record.facts["rounds_completed"] = 1
    record.persist([{"op": "deploy"}, {"op": "round 1"}], ["0xaa", "0xbb"])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    # round 2 reached the journal and the results, but not the manifest: it is not written
    record.rows += rows(2)
    record.facts["rounds_completed"] = 2
    record.persist([{"op": "deploy"}, {"op": "round 1"}, {"op": "round 2"}],
                   ["0xaa", "0xbb", "0xcc"])
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    again = RunRecord.resume(tmp_path, {"seed": 1}, manifest)
    assert again.transactions == ["0xaa", "0xbb"]
    assert again.prior_receipts == [{"op": "deploy"}, {"op": "round 1"}]
    assert sorted({r["round"] for r in again.rows}) == [0, 1]
    assert again.facts["resumed_after_round"] == [1]
    with pytest.raises(ConfigError, match="does not reach round 3"):
        RunRecord.resume(tmp_path, {"seed": 1}, {**manifest, "rounds_completed": 3})
