"""`--runtime` on the commands that embed: the choice shows in reports and manifests, never in the results."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rsir.cli.main import app

pytest.importorskip("onnxruntime")
runner = CliRunner()


@pytest.fixture
def tiny_archive(demo_archive, tmp_path: Path) -> Path:
    """Six real demo scenes of three classes in their own folder."""
    root = tmp_path / "scenes"
    for it in demo_archive.items[::28][:6]:
        dest = root / it.path.parent.name / it.path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(it.path, dest)
    return root


def _index(archive: Path, out: Path, runtime: str, cache: Path, monkeypatch) -> dict:
    from rsir.models.runtime import onnx_dir

    monkeypatch.setenv("RSIR_ONNX_CACHE", str(onnx_dir()))  # the suite's export, made once
    monkeypatch.setenv("RSIR_CACHE", str(cache))  # features: a fresh cache per run
    result = runner.invoke(app, ["index", str(archive), "--out", str(out), "--runtime", runtime, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_runtimes_give_the_same_vectors_and_are_recorded(tiny_archive, tmp_path, monkeypatch) -> None:
    fast = _index(tiny_archive, tmp_path / "onnx", "onnx", tmp_path / "cache-a", monkeypatch)
    eager = _index(tiny_archive, tmp_path / "torch", "torch", tmp_path / "cache-b", monkeypatch)
    assert (fast["runtime"], eager["runtime"]) == ("onnx", "torch")
    manifests = [json.loads((tmp_path / rt / "manifest.json").read_text()) for rt in ("onnx", "torch")]
    assert [m["runtime"] for m in manifests] == ["onnx", "torch"]
    assert manifests[0]["ids"] == manifests[1]["ids"] and len(manifests[0]["ids"]) == 6
    vectors = [np.load(tmp_path / rt / "vectors.npy") for rt in ("onnx", "torch")]
    assert np.abs(vectors[0] - vectors[1]).max() < 1e-4
    # Same feature-cache key: a rerun with the other runtime reuses the cached vectors (and says whose).
    again = _index(tiny_archive, tmp_path / "again", "onnx", tmp_path / "cache-b", monkeypatch)
    assert again["runtime"] == "torch"


def test_unknown_runtime_is_a_clear_error(tiny_archive, tmp_path) -> None:
    result = runner.invoke(app, ["index", str(tiny_archive), "--out", str(tmp_path / "x"), "--runtime", "tensorrt"])
    assert result.exit_code == 2 and "unknown runtime 'tensorrt'" in result.output
    assert "Traceback" not in result.output
