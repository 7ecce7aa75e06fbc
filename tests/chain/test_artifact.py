"""The shipped contract artifact: provenance, pinned toolchain and byte-for-byte reproducibility."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from chainlearn_ray.chain.artifact import (
    ARTIFACT_PATH,
    artifact_sha256,
    contracts_dir,
    load_artifact,
    source_sha256,
)
from chainlearn_ray.chain.build import run_build
from chainlearn_ray.cli import main as cli_main
from chainlearn_ray.errors import ArtifactError

CONTRACTS = contracts_dir()
HAS_NODE_MODULES = (
    CONTRACTS is not None
    and (CONTRACTS / "node_modules" / "solc").is_dir()
    and shutil.which("node") is not None
)
needs_build = pytest.mark.skipif(
    not HAS_NODE_MODULES,
    reason="contracts/node_modules or Node.js is missing: run `npm ci` in contracts/ to check "
    "that the artifact is reproducible",
)


def test_artifact_hash_is_the_file_hash() -> None:
    assert artifact_sha256() == hashlib.sha256(ARTIFACT_PATH.read_bytes()).hexdigest()


def test_artifact_contents() -> None:
    art = load_artifact()
    names = {item.get("name") for item in art.abi}
    for fn in (
        "registerHospital", "startNewRound", "submitUpdate", "calculateWeightPure",
        "calculateWeight", "calculateRoundWeight", "recordEnsemblePrediction", "getModelType",
        "getHospitalInfo", "getEnsembleRecord", "getRoundSubmission", "getHospitalCount",
        "getRoundSubmitterCount", "currentRound", "owner", "HospitalRegistered", "RoundStarted",
        "UpdateSubmitted", "EnsemblePredictionRecorded",
    ):  # fmt: skip
        assert fn in names, fn
    errors = [e["name"] for e in art.error_abis()]
    # ours, Ownable's, and the two of OpenZeppelin's Address.sendValue (paying ETH out)
    ours = [e for e in errors if e not in ("InsufficientBalance", "FailedCall")]
    assert all(e.startswith(("FLCoordinator__", "Ownable")) for e in ours), errors
    assert art.settings["evmVersion"] == "cancun"
    assert art.settings["optimizer"]["enabled"] is True
    assert art.bytecode.startswith("0x") and len(art.bytecode) > 1000


def _abi_item(name: str) -> dict:
    (item,) = [i for i in load_artifact().abi if i.get("name") == name]
    return item


@pytest.mark.parametrize(
    ("event", "inputs"),
    [
        ("HospitalRegistered", [("hospital", "address", True), ("name", "string", False),
                                ("capacityClass", "uint8", False),
                                ("pocBenchmarkHash", "bytes32", False)]),
        ("RoundStarted", [("round", "uint256", True)]),
        ("UpdateSubmitted", [("round", "uint256", True), ("hospital", "address", True),
                             ("modelHash", "bytes32", False), ("confidence", "uint256", False),
                             ("ece", "uint256", False), ("modelType", "uint8", False)]),
        ("EnsemblePredictionRecorded", [("round", "uint256", True),
                                        ("predictionHash", "bytes32", False),
                                        ("participantCount", "uint256", False)]),
    ],
)  # fmt: skip
def test_seed_events_exactly(event: str, inputs: list[tuple[str, str, bool]]) -> None:
    item = _abi_item(event)
    assert item["type"] == "event"
    assert [(i["name"], i["type"], i["indexed"]) for i in item["inputs"]] == inputs


@pytest.mark.parametrize(
    ("function", "outputs"),
    [
        ("getHospitalInfo", ["name", "capacityClass", "assignedModelType", "confidence", "ece",
                             "isRegistered", "pocBenchmarkHash", "roundsParticipated"]),
        ("getRoundSubmission", ["modelHash", "confidence", "ece", "timestamp", "modelType"]),
        ("getEnsembleRecord", ["predictionHash", "participantCount", "timestamp"]),
    ],
)  # fmt: skip
def test_seed_view_output_names(function: str, outputs: list[str]) -> None:
    assert [o["name"] for o in _abi_item(function)["outputs"]] == outputs


def test_artifact_is_canonical_json() -> None:
    text = ARTIFACT_PATH.read_text()
    data = json.loads(text)
    assert text == json.dumps(data, indent=2, sort_keys=True) + "\n"


@pytest.mark.skipif(CONTRACTS is None, reason="not a source checkout: contracts/ is absent")
def test_artifact_matches_source_and_pins() -> None:
    assert CONTRACTS is not None
    art = load_artifact()
    assert art.source_sha256 == source_sha256(CONTRACTS), (
        "contracts/FLCoordinator.sol changed since the artifact was built: run "
        "`chainlearn build-contract`"
    )
    package = json.loads((CONTRACTS / "package.json").read_text())
    deps = package["dependencies"]
    assert all(v[0].isdigit() for v in deps.values()), "versions must be pinned exactly"
    assert art.compiler_version.startswith(deps["solc"] + "+")
    assert {"solc", "@openzeppelin/contracts", "@foundry-rs/anvil"} <= set(deps)
    assert (CONTRACTS / "package-lock.json").is_file()


@needs_build
def test_fresh_compile_is_byte_identical(tmp_path: Path) -> None:
    """`chainlearn build-contract` reproduces the shipped artifact byte for byte."""
    out = tmp_path / "FLCoordinator.json"
    assert cli_main(["build-contract", "--out", str(out)]) == 0
    assert out.read_bytes() == ARTIFACT_PATH.read_bytes(), (
        "the shipped artifact differs from a fresh compile: run `chainlearn build-contract`"
    )


def test_build_without_node_modules_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "build.mjs").write_text("// empty\n")
    (tmp_path / "FLCoordinator.sol").write_text("// empty\n")
    with pytest.raises(ArtifactError, match="npm ci"):
        run_build(contracts=tmp_path, out=tmp_path / "x.json")


def test_build_without_node_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "build.mjs").write_text("// empty\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ArtifactError, match=r"Node\.js"):
        run_build(contracts=tmp_path)


def test_build_without_contracts_dir(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="contracts/"):
        run_build(contracts=tmp_path / "missing")


def test_missing_artifact_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="build-contract"):
        artifact_sha256(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ArtifactError, match="malformed"):
        load_artifact(bad)
