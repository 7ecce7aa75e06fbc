"""Bad settings fail before Ray starts, with one line that names the setting (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chainlearn_ray import cli
from chainlearn_ray.errors import ConfigError
from chainlearn_ray.experiment.loading import from_dict, load_config


@pytest.mark.parametrize(("raw", "message"), [
    ({"train": {"rounds": "three"}}, r"train\.rounds must be a whole number, got 'three'"),
    ({"train": {"rounds": 2.7}}, r"train\.rounds must be a whole number, got 2\.7"),
    ({"train": {"lr": "fast"}}, r"train\.lr must be a number"),
    ({"seed": "x"}, r"seed must be a whole number"),
    ({"hospitals": {"weak": 1.5}}, r"hospitals\.weak must be a whole number"),
    ({"poc": {"steps": True}}, r"poc\.steps must be a whole number, got True"),
    ({"tiers": {"weak": {"arch": "nosucharch"}}}, r"tiers\.weak\.arch: unknown architecture"),
    ({"tiers": {"medium": {"attendance": "often"}}}, r"tiers\.medium\.attendance must be"),
])
def test_wrong_types_name_the_setting(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_dict(raw)


def test_whole_floats_and_ints_for_floats_still_load() -> None:
    cfg = from_dict({"train": {"lr": 1, "rounds": 2}, "tiers": {"weak": {"attendance": 1}}})
    assert cfg.train.rounds == 2 and cfg.train.lr == 1


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize("dry", [True, False])
def test_unknown_arch_fails_before_ray_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dry: bool
) -> None:
    argv = ["run", "--dataset", "synthetic", "--arch", "nosucharch", "--out", str(tmp_path / "o")]
    code, err = _run([*argv, "--dry-run"] if dry else argv, capsys)
    assert code == 2
    assert err.count("\n") == 0 and "tiers.weak.arch: unknown architecture 'nosucharch'" in err
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()  # nothing written for a run that never started


def test_yaml_with_a_fractional_round_count_fails_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("train: {rounds: 2.7}\n")
    code, err = _run(["run", "--config", str(config), "--dry-run"], capsys)
    assert code == 2 and err.count("\n") == 0
    assert "train.rounds must be a whole number, got 2.7" in err
    with pytest.raises(ConfigError, match=r"train\.rounds"):
        load_config(config)


@pytest.mark.parametrize("cut", [0, 100, 0.5])
def test_empty_or_truncated_npz_is_a_one_line_data_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cut: float
) -> None:
    from chainlearn_ray.data.synthetic import write_synthetic

    path = write_synthetic(tmp_path, "synth")
    data = path.read_bytes()
    path.write_bytes(data[: int(cut * len(data)) if cut < 1 else int(cut)])
    code, err = _run(["run", "--dataset", "synth", "--data-dir", str(tmp_path), "--arch",
                      "tiny_cnn", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and err.count("\n") == 0 and "Traceback" not in err
    assert "synth.npz is not a readable .npz file" in err and "delete it" in err
