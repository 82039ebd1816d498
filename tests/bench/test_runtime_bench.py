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
    ballast = bytearray(3 << 30)  # this process: 3 GiB resident, which the child's figure must not inherit
    ballast[:: 1 << 12] = b"\x01" * len(ballast[:: 1 << 12])
    job = index_job(root, "onnx", batch_size=2)
    del ballast
    assert job["runtime"] == "onnx" and job["images_per_s"] > 0 and job["seconds"] > 0
    assert 100 < job["peak_rss_mb"] < 3 << 10  # torch + the encoder + ONNX Runtime in the child only


def test_failed_index_job_says_why(tmp_path: Path) -> None:
    from rsir.bench.runtime import index_job

    with pytest.raises(RuntimeError, match="archive not found"):
        index_job(tmp_path / "nowhere", "onnx", batch_size=2)
