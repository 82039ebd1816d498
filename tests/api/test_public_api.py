"""The public surface: `import rsir` stays light, every exported name resolves, results are typed."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import rsir
import rsir.api


def test_import_rsir_loads_nothing_heavy() -> None:
    code = "import sys, rsir; print(sorted(m for m in ('torch', 'numpy', 'faiss', 'rsir.api') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_exported_name_resolves() -> None:
    assert set(rsir.__all__) - {"__version__"} == set(rsir.api.__all__)
    for name in rsir.__all__:
        assert getattr(rsir, name) is not None, name
    assert rsir.open_index is rsir.api.open_index


def test_results_are_dataclasses() -> None:
    for name in ("Metrics", "TrainResult", "RoundRecord", "SimulationResult", "ItsrScores", "PairHit", "Hit"):
        assert dataclasses.is_dataclass(getattr(rsir, name)), name


def test_bad_settings_are_refused_before_any_work(tmp_path) -> None:
    import pytest

    with pytest.raises(TypeError, match="unknown simulation settings"):
        rsir.simulate(rsir.demo_archive(), tmp_path, sedes=1)
    with pytest.raises(TypeError, match="unknown ITSR settings"):
        rsir.train_itsr(tmp_path, tmp_path / "out", fusoin="tff")
    with pytest.raises(FileNotFoundError):
        rsir.open_archive(tmp_path / "nowhere")


def test_simulate_and_demo_pass_their_runtime_to_the_encoder(tmp_path) -> None:
    """An unknown runtime is refused where the encoder loads: proof the setting reaches it (not ignored)."""
    import pytest

    from rsir.cbir.demo import run_demo

    with pytest.raises(ValueError, match="unknown runtime"):
        rsir.simulate(rsir.demo_archive(), tmp_path / "sim", runtime="onnx-fast", seeds=1)
    with pytest.raises(ValueError, match="unknown runtime"):
        run_demo(tmp_path / "demo", runtime="onnx-fast")


def test_anneal_serve_passes_its_runtime_to_the_encoder(tmp_path) -> None:
    import pytest

    from rsir.app.annotate.campaign import AnnotationCampaign

    with pytest.raises(ValueError, match="unknown runtime"):
        AnnotationCampaign.open(rsir.demo_archive(), str(tmp_path / "c.db"), "c", runtime="onnx-fast")
