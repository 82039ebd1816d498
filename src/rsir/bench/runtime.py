"""Eager torch vs ONNX Runtime, side by side in one run: forward-only and end-to-end ``rsir index``.

Forward-only: the same pre-decoded batches through both runtimes, back to back, per repeat. End to end:
the real ``rsir index`` command in a fresh child process per runtime (an empty feature cache, so every
image is decoded, prepared, encoded and written; the ONNX export is made beforehand, as a user's second
archive finds it), which also gives each job's own peak memory. Ratios are medians of per-repeat ratios:
on a shared machine both sides of a ratio see about the same load.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

RUNTIMES = ("torch", "onnx")


def forward_pair(encoder, inputs, n: int, batch_size: int) -> dict:
    """Forward-only images/s of eager torch and ONNX Runtime on the same inputs, back to back."""
    from rsir.bench.throughput import forward_throughput
    from rsir.models.runtime import set_runtime

    out = {rt: forward_throughput(set_runtime(encoder, rt), n, batch_size, inputs) for rt in RUNTIMES}
    set_runtime(encoder, "auto")
    return out


def copy_spread(root: Path, n: int, dest: Path) -> Path:
    """A folder archive of ``n`` images spread over the one at ``root`` (class folders kept), for short runs."""
    import shutil

    from rsir.bench.throughput import spread
    from rsir.data.archives import open_archive

    archive = open_archive(root)
    for item in spread(archive, n).items:
        target = dest / Path(item.path).relative_to(archive.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(item.path, target)
    return dest


def index_job(archive: Path, runtime: str, batch_size: int, threads: int = 0) -> dict:
    """One ``rsir index ARCHIVE --runtime R`` in a child process with an empty feature cache: its report
    (images/s over the whole job: embed + index build + write) and its peak RSS (MiB, decode workers apart)."""
    from rsir.models.runtime import onnx_dir

    with tempfile.TemporaryDirectory(prefix="rsir-bench-index-") as tmp:
        env = {**os.environ, "RSIR_CACHE": tmp, "RSIR_ONNX_CACHE": str(onnx_dir())}
        if threads > 0:
            env["OMP_NUM_THREADS"] = str(threads)
        rss_file = Path(tmp) / "rss.json"
        args = ["index", str(archive), "--out", str(Path(tmp) / "index"), "--runtime", runtime]
        args += ["--batch-size", str(batch_size), "--json"]
        # The CLI runs in the child (rsir.cli.peak_rss): bench sits below cli in the layers and does not import it.
        cmd = [sys.executable, "-m", "rsir.cli.peak_rss", str(rss_file), *args]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"rsir index --runtime {runtime} failed: {done.stderr.strip()[-2000:]}")
        report = json.loads(done.stdout)
        rss = json.loads(rss_file.read_text())
    return {
        "runtime": report["runtime"],
        "images_per_s": round(report["n_items"] / report["seconds"], 2),
        "seconds": report["seconds"],
        "peak_rss_mb": rss["self"],
        "workers_peak_rss_mb": rss["children"],
    }


def compare_runtimes(
    archive,
    index_archive: Path,
    encoder,
    *,
    n_images: int = 256,
    batch_size: int = 32,
    repeats: int = 2,
    threads: int = 0,
    log=lambda msg: None,
) -> dict:
    """Forward-only and end-to-end images/s of both runtimes, ``repeats`` times back to back."""
    from rsir.bench.throughput import decoded_inputs

    inputs = decoded_inputs(archive, encoder, min(n_images, 4 * batch_size))
    forward_pair(encoder, inputs, 2 * batch_size, batch_size)  # exports once, outside any timing
    rows = []
    for r in range(repeats):
        load = round(os.getloadavg()[0], 2)
        fwd = forward_pair(encoder, inputs, n_images, batch_size)
        log(f"runtime repeat {r + 1}/{repeats}: forward torch {fwd['torch']:.1f}, onnx {fwd['onnx']:.1f} img/s")
        jobs = {rt: index_job(index_archive, rt, batch_size, threads) for rt in RUNTIMES}
        log(f"  rsir index: torch {jobs['torch']['images_per_s']}, onnx {jobs['onnx']['images_per_s']} img/s")
        rows.append(
            {
                "load_1min": load,
                "forward_torch": round(fwd["torch"], 2),
                "forward_onnx": round(fwd["onnx"], 2),
                "index_torch": jobs["torch"]["images_per_s"],
                "index_onnx": jobs["onnx"]["images_per_s"],
                "runtime_speedup": round(fwd["onnx"] / fwd["torch"], 2),
                "index_speedup": round(jobs["onnx"]["images_per_s"] / jobs["torch"]["images_per_s"], 2),
                "index_over_forward": round(jobs["onnx"]["images_per_s"] / fwd["onnx"], 3),
                "rss_torch_mb": jobs["torch"]["peak_rss_mb"],
                "rss_onnx_mb": jobs["onnx"]["peak_rss_mb"],
            }
        )
    med = lambda key: statistics.median(row[key] for row in rows)  # noqa: E731
    from rsir.models.runtime import providers

    found = providers()
    return {
        "index_archive": str(index_archive),
        # ONNX Runtime takes CUDA when its build has it (onnxruntime-gpu); otherwise this says it was skipped.
        "onnx_providers": found,
        "cuda": "used" if "CUDAExecutionProvider" in found else "skipped (no CUDA execution provider)",
        "n_forward_images": n_images,
        "batch_size": batch_size,
        "runtime_speedup": round(med("runtime_speedup"), 2),
        "index_speedup": round(med("index_speedup"), 2),
        "index_over_forward": round(med("index_over_forward"), 3),
        "index_rss_torch_mb": max(row["rss_torch_mb"] for row in rows),
        "index_rss_onnx_mb": max(row["rss_onnx_mb"] for row in rows),
        "repeats": rows,
    }


def own_peak_rss_mb() -> float:
    """This process's peak RSS since it started (``VmHWM``). Not ``ru_maxrss``: Linux carries that across
    fork + exec, so a child would report at least its parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
