"""`rsir bench`: one run on this machine, one table (or `--json`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from rsir.cli.common import emit, table, user_errors

TARGETS = {
    "extract_ratio": (">=", 0.85),
    "ann_speedup_1e6": (">=", 20.0),
    "ann_recall10_1e6": (">=", 0.9),
    "ray_over_local": ("<=", 1.5),
    "runtime_speedup": (">=", 4.0),
    "index_speedup": (">=", 3.0),
    "index_over_forward": (">=", 0.85),
}


def bench(
    quick: Annotated[bool, typer.Option("--quick", help="Smoke-sized run (about a minute).")] = False,
    archive: Annotated[
        Path | None, typer.Option(help="Image archive for extraction and seeds (default: shared UC Merced).")
    ] = None,
    threads: Annotated[int, typer.Option(help="torch + faiss threads (0: library defaults).")] = 0,
    ray_images: Annotated[int, typer.Option(help="Also time the Ray engine vs local on this many images.")] = 0,
    hnsw_max: Annotated[int | None, typer.Option(help="Largest collection to build HNSW for.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Extraction vs forward-only images/s, ANN vs exact search at 1e5/1e6 vectors, ANNEAL selection time
    at 1e4..1e6 pairs, peak memory. Progress goes to stderr."""
    # Shared machines: OpenMP threads that spin while others hold the cores make small parallel regions
    # (PQ training, head training, depthwise convs) many times slower; sleeping waiters avoid that.
    # Must be set before torch / faiss load their OpenMP runtime; an explicit setting is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from dataclasses import replace

    from rsir.bench.run import QUICK, BenchConfig, run_bench

    config = QUICK if quick else BenchConfig()
    config = replace(config, threads=threads, ray_images=ray_images, hnsw_max=hnsw_max or config.hnsw_max)
    with user_errors():
        report = run_bench(quick=quick, archive=archive, config=config)
    emit(report, as_json, render)


def _verdict(key: str, value) -> str:
    if key not in TARGETS or value is None:
        return ""
    op, target = TARGETS[key]
    ok = value >= target if op == ">=" else value <= target
    return f"{op} {target}: {'met' if ok else 'MISSED'}"


def render(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"machine: {m.get('cpu')} x{m['nproc']}, {m.get('ram_gib')} GiB RAM, load {m['load_avg_1min_start']}"
        f" -> {m.get('load_avg_1min_end')}; {report['versions']}; OMP_WAIT_POLICY="
        f"{report['settings']['omp_wait_policy']}" + ("; QUICK" if report["quick"] else ""),
        "",
    ]
    keys = ["extract_ratio", "extract_images_per_s", "forward_images_per_s", "runtime_speedup", "index_speedup"]
    keys += ["index_over_forward", "index_rss_torch_mb", "index_rss_onnx_mb", "ann_speedup_1e6", "ann_recall10_1e6"]
    keys += ["ann_setting_1e6", "select_seconds_1e6_pairs", "ray_over_local", "peak_rss_mb"]
    lines.append(table([{"metric": k, "value": report.get(k), "target": _verdict(k, report.get(k))} for k in keys]))
    if "throughput" in report:
        lines += ["", "extraction vs forward-only (images/s, back to back)", table(report["throughput"]["repeats"])]
    if "runtime" in report:
        title = f"eager torch vs ONNX Runtime (images/s; rsir index {report['runtime']['index_archive']})"
        lines += ["", title, table(report["runtime"]["repeats"])]
    if "ann" in report:
        lines += ["", "search: approximate vs exact (batched queries, per-query ms)", table(report["ann"])]
    if "selection" in report:
        lines += ["", f"ANNEAL selection over {report['selection_items']} items", table(report["selection"])]
    if "ray" in report:
        lines += ["", "Ray engine vs local", table([report["ray"]])]
    return "\n".join(lines)
