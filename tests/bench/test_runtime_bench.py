"""The runtime benchmark's end-to-end job: a real `rsir index` child process per runtime."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")


def test_index_job_reports_speed_memory_and_runtime(demo_archive, tmp_path: Path) -> None:
    from rsir.bench.runtime import index_job

    root = tmp_path / "scenes"
    for it in demo_archive.items[::40][:4]:
        (root / it.path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(it.path, root / it.path.parent.name / it.path.name)
    job = index_job(root, "onnx", batch_size=2)
    assert job["runtime"] == "onnx" and job["images_per_s"] > 0 and job["seconds"] > 0
    assert job["peak_rss_mb"] > 100  # torch + the encoder + ONNX Runtime in the child, not this process


def test_failed_index_job_says_why(tmp_path: Path) -> None:
    from rsir.bench.runtime import index_job

    with pytest.raises(RuntimeError, match="archive not found"):
        index_job(tmp_path / "nowhere", "onnx", batch_size=2)
