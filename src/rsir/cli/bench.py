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
    "milvus_recall10": (">=", 0.9),
    "append_over_rebuild": ("<=", 0.15),
}


def bench(
    quick: Annotated[bool, typer.Option("--quick", help="Smoke-sized run (about a minute).")] = False,
    archive: Annotated[
        Path | None, typer.Option(help="Image archive for extraction and seeds (default: shared UC Merced).")
    ] = None,
    threads: Annotated[int, typer.Option(help="torch + faiss threads (0: library defaults).")] = 0,
    ray_images: Annotated[int, typer.Option(help="Also time the Ray engine vs local on this many images.")] = 0,
    hnsw_max: Annotated[int | None, typer.Option(help="Largest collection to build HNSW for.")] = None,
    sections: Annotated[
        str | None, typer.Option(help="Comma-separated subset of extract,runtime,ann,select,stores (default: all).")
    ] = None,
    milvus_n: Annotated[
        int | None, typer.Option(min=1000, help="Vectors (256-d) for FAISS IVF-PQ vs Milvus Lite (default 1e6).")
    ] = None,
    milvus_index: Annotated[str, typer.Option(help="Milvus Lite's ANN index: hnsw, ivfflat or ivfsq8.")] = "hnsw",
    append_n: Annotated[
        int | None, typer.Option(min=1000, help="Index size for append 10% vs rebuild (default 1e5).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Extraction vs forward-only images/s, ANN vs exact search at 1e5/1e6 vectors, ANNEAL selection time
    at 1e4..1e6 pairs, peak memory. Progress goes to stderr."""
    # Shared machines: OpenMP threads that spin while others hold the cores make small parallel regions
    # (PQ training, head training, depthwise convs) many times slower; sleeping waiters avoid that.
    # Must be set before torch / faiss load their OpenMP runtime; an explicit setting is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from dataclasses import replace

    from rsir.bench.run import QUICK, SECTIONS, BenchConfig, run_bench

    config = QUICK if quick else BenchConfig()
    config = replace(config, threads=threads, ray_images=ray_images, hnsw_max=hnsw_max or config.hnsw_max)
    config = replace(
        config,
        milvus_n=milvus_n or config.milvus_n,
        append_n=append_n or config.append_n,
        milvus_index=milvus_index,
    )
    with user_errors():
        if sections is not None:
            chosen = tuple(s.strip() for s in sections.split(",") if s.strip())
            unknown = [s for s in chosen if s not in SECTIONS]
            if unknown or not chosen:
                raise ValueError(f"--sections: choose from {', '.join(SECTIONS)} (got {sections!r})")
            config = replace(config, sections=chosen)
        if milvus_index not in ("hnsw", "ivfflat", "ivfsq8", "flat"):
            raise ValueError("--milvus-index: choose hnsw, ivfflat, ivfsq8 or flat")
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
    keys += ["ann_setting_1e6", "select_seconds_1e6_pairs", "ray_over_local", "milvus_recall10", "milvus_qps_16"]
    keys += ["append_over_rebuild", "peak_rss_mb"]
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
    if "stores" in report:
        lines += ["", "index stores on the same vectors (queries through SearchIndex.page)", table(report["stores"])]
        lines += ["", "append 10% vs full rebuild (same vectors, embedding excluded)", table(report["append"])]
    if "stores_skipped" in report:
        lines += ["", f"index stores: skipped ({report['stores_skipped']})"]
    if "ray" in report:
        lines += ["", "Ray engine vs local", table([report["ray"]])]
    return "\n".join(lines)
