"""`rsir bench`: every measurement in one run on this machine, as one report (table or JSON)."""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

HEADLINE_N = 1_000_000
HEADLINE_POOL = 1_000_000


@dataclass(frozen=True)
class BenchConfig:
    n_images: int = 256  # extraction vs forward-only, per repeat
    repeats: int = 3
    batch_size: int = 32
    ann_sizes: tuple[int, ...] = (100_000, 1_000_000)
    ann_dims: tuple[int, ...] = (256, 0)  # 0: the encoder's own dimension
    n_queries: int = 300
    hnsw_max: int = 100_000
    pool_sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    ray_images: int = 0  # > 0: also time the Ray engine against the local one on this many images
    threads: int = 0  # > 0: torch and faiss threads
    sections: tuple[str, ...] = ("extract", "runtime", "ann", "select", "stores")
    runtime_repeats: int = 2  # eager torch vs ONNX Runtime: forward-only and whole `rsir index` jobs
    index_archive: str = ""  # the archive `rsir index` runs on ("" = the benchmark archive)
    index_images: int = 0  # > 0: `rsir index` runs on a copy of this many of its images, spread over it
    milvus_n: int = 1_000_000  # store comparison: FAISS IVF-PQ vs Milvus Lite at milvus_n x 256
    milvus_index: str = "hnsw"
    append_n: int = 100_000  # append 10% to an index of this size vs rebuild it
    extra: dict = field(default_factory=dict)


QUICK = BenchConfig(
    n_images=16,
    repeats=1,
    batch_size=8,
    ann_sizes=(10_000,),
    ann_dims=(64, 0),
    n_queries=100,
    hnsw_max=10_000,
    pool_sizes=(10_000,),
    runtime_repeats=1,
    index_images=32,
    milvus_n=10_000,
    append_n=10_000,
)

SECTIONS = ("extract", "runtime", "ann", "select", "stores")


def shared_ucmerced() -> Path:
    """``$RSIR_SHARED_DATA/ucmerced``, else ``../shared/data/ucmerced`` beside the repository."""
    root = os.environ.get("RSIR_SHARED_DATA", Path(__file__).resolve().parents[3] / ".." / "shared" / "data")
    return Path(root).resolve() / "ucmerced"


def machine() -> dict:
    info = {"nproc": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    try:
        cpu = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("model name"))
        mem = Path("/proc/meminfo").read_text().split()
        info["ram_gib"] = round(int(mem[mem.index("MemTotal:") + 1]) / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        info["cpu"] = platform.processor() or platform.machine()
    info["load_avg_1min_start"] = round(os.getloadavg()[0], 2)
    return info


def versions() -> dict:
    import faiss
    import torch

    out = {"torch": torch.__version__, "faiss": faiss.__version__, "numpy": np.__version__}
    try:
        import onnxruntime

        out["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return out


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _set_threads(n: int) -> None:
    if n > 0:
        import faiss
        import torch

        torch.set_num_threads(n)
        faiss.omp_set_num_threads(n)


def _seeds(archive, encoder, quick_emb):
    """Real embeddings + labels: the whole archive (cached features) in a full run, else the extraction's."""
    if quick_emb is not None:
        by_id = {it.id: it for it in archive.items}
        return quick_emb.vectors, [by_id[i].labels or ("?",) for i in quick_emb.ids]
    from rsir.embed.features import archive_features

    emb = archive_features(archive, encoder, progress=False)
    by_id = {it.id: it for it in archive.items}
    return emb.vectors, [by_id[i].labels or ("?",) for i in emb.ids]


def _selection_items(seeds: np.ndarray, labels: list, need_pairs: int) -> tuple[np.ndarray, list]:
    """Enough items for the largest pool: the real ones, or generated around them (labels inherited)."""
    from rsir.active.pool import n_all_pairs
    from rsir.bench.ann import generate

    if n_all_pairs(len(seeds)) >= 2 * need_pairs:
        return seeds, labels
    n = int(np.ceil(np.sqrt(4 * need_pairs))) + 1
    rng = np.random.default_rng(1)
    origin = rng.integers(0, len(seeds), n)
    return generate(seeds[origin], n, rng, spread=0.3), [labels[o] for o in origin]


def run_bench(quick: bool = False, archive: Path | None = None, config: BenchConfig | None = None) -> dict:
    """Run the configured sections and return the report (flat headline keys + per-section rows)."""
    from rsir.data.archives import open_archive
    from rsir.models.encoders import load_encoder

    cfg = config or (QUICK if quick else BenchConfig())
    _set_threads(cfg.threads)
    report: dict = {"quick": quick, "machine": machine(), "versions": versions(), "settings": asdict(cfg)}
    report["settings"]["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY", "(library default)")
    path = Path(archive) if archive else shared_ucmerced()
    if not path.exists():
        raise FileNotFoundError(f"benchmark archive not found: {path} (pass --archive or set RSIR_SHARED_DATA)")
    arch = open_archive(path)
    encoder = load_encoder()
    memory, quick_emb = {}, None
    if "extract" in cfg.sections:
        quick_emb = _extract_section(report, arch, encoder, cfg)
        memory["after_extract"] = peak_rss_mb()
    if "runtime" in cfg.sections:
        _runtime_section(report, arch, path, encoder, cfg)
        memory["after_runtime"] = peak_rss_mb()
    if {"ann", "select", "stores"} & set(cfg.sections):  # the sections that need seed embeddings
        seeds, labels = _seeds(arch, encoder, quick_emb if quick else None)
    if "ann" in cfg.sections:
        _ann_section(report, seeds, cfg, encoder.config.dim)
        memory["after_ann"] = peak_rss_mb()
    if "select" in cfg.sections:
        _select_section(report, *_selection_items(seeds, labels, max(cfg.pool_sizes)), cfg)
        memory["after_select"] = peak_rss_mb()
    if "stores" in cfg.sections:
        _stores_section(report, seeds, cfg)
        memory["after_stores"] = peak_rss_mb()
    if cfg.ray_images:
        from rsir.bench.throughput import ray_vs_local

        _log(f"ray vs local on {cfg.ray_images} images")
        report["ray"] = ray_vs_local(arch, encoder, cfg.ray_images, batch_size=cfg.batch_size)
        report["ray_over_local"] = report["ray"]["ray_over_local"]
    report["memory_mb"] = memory
    report["peak_rss_mb"] = peak_rss_mb()
    report["machine"]["load_avg_1min_end"] = round(os.getloadavg()[0], 2)
    return report


def _extract_section(report: dict, arch, encoder, cfg: BenchConfig):
    from rsir.bench.throughput import compare_throughput

    _log(f"extraction vs forward-only: {cfg.n_images} images x {cfg.repeats}")
    tp = compare_throughput(arch, encoder, cfg.n_images, batch_size=cfg.batch_size, repeats=cfg.repeats)
    report["throughput"] = tp.to_dict()
    report["extract_ratio"] = tp.extract_ratio
    report["extract_images_per_s"] = tp.extract_images_per_s
    report["forward_images_per_s"] = tp.forward_images_per_s
    return tp.embeddings


def _runtime_section(report: dict, arch, path: Path, encoder, cfg: BenchConfig) -> None:
    import tempfile

    from rsir.bench.runtime import compare_runtimes, copy_spread

    with tempfile.TemporaryDirectory(prefix="rsir-bench-archive-") as tmp:
        index_archive = Path(cfg.index_archive or path)
        if cfg.index_images > 0:
            index_archive = copy_spread(index_archive, cfg.index_images, Path(tmp))
        _log(f"eager torch vs ONNX Runtime: forward-only and `rsir index {index_archive}` x {cfg.runtime_repeats}")
        rt = compare_runtimes(
            arch,
            index_archive,
            encoder,
            n_images=cfg.n_images,
            batch_size=cfg.batch_size,
            repeats=cfg.runtime_repeats,
            threads=cfg.threads,
            log=_log,
        )
    report["runtime"] = rt
    for key in ("runtime_speedup", "index_speedup", "index_over_forward", "index_rss_torch_mb", "index_rss_onnx_mb"):
        report[key] = rt[key]


def _ann_section(report: dict, seeds: np.ndarray, cfg: BenchConfig, encoder_dim: int) -> None:
    from rsir.bench.ann import ann_benchmark, headline

    dims = [d or encoder_dim for d in cfg.ann_dims]
    _log(f"ANN vs exact: sizes {list(cfg.ann_sizes)}, dims {dims}, {cfg.n_queries} queries")
    rows = [
        r.to_dict()
        for r in ann_benchmark(
            seeds, list(cfg.ann_sizes), dims, n_queries=cfg.n_queries, hnsw_max=cfg.hnsw_max, log=_log
        )
    ]
    report["ann"] = rows
    # The operating point: the fastest setting that keeps recall@10 >= 0.9 at 10^6 x the encoder's dim.
    best = headline(rows, HEADLINE_N, encoder_dim)
    report["ann_speedup_1e6"] = best["speedup"] if best else None
    report["ann_recall10_1e6"] = best["recall10"] if best else None
    report["ann_setting_1e6"] = f"{best['index']} {best['settings']}" if best else None


def _select_section(report: dict, emb: np.ndarray, labels: list, cfg: BenchConfig) -> None:
    from rsir.bench.selection import selection_benchmark

    _log(f"ANNEAL selection: pools {list(cfg.pool_sizes)} over {len(emb)} items")
    rows = selection_benchmark(emb, labels, list(cfg.pool_sizes))
    report["selection"] = rows
    head = [r for r in rows if r["strategy"] == "anneal-bcgue" and r["pool"] >= 0.99 * HEADLINE_POOL]
    report["select_seconds_1e6_pairs"] = head[0]["seconds"] if head else None
    report["selection_items"] = len(emb)


def _stores_section(report: dict, seeds: np.ndarray, cfg: BenchConfig) -> None:
    """FAISS IVF-PQ vs Milvus Lite at milvus_n x 256, and append vs rebuild; skipped with the reason when the
    milvus extra is missing or Milvus Lite cannot start."""
    from rsir.bench.stores import store_benchmark
    from rsir.index.milvus_client import MilvusUnavailable

    _log(f"stores: FAISS IVF-PQ vs Milvus Lite ({cfg.milvus_index}) at {cfg.milvus_n} x 256; append at {cfg.append_n}")
    try:
        out = store_benchmark(
            seeds,
            n=cfg.milvus_n,
            n_queries=cfg.n_queries,
            milvus_index=cfg.milvus_index,
            append_n=cfg.append_n,
            log=_log,
        )
    except MilvusUnavailable as err:
        report["stores_skipped"] = str(err)
        return
    report["stores"], report["append"] = out["stores"], out["append"]
    milvus = [r for r in out["stores"] if r["store"].startswith("milvus")]
    if milvus:
        report["milvus_recall10"] = milvus[0]["recall10"]
        report["milvus_qps_16"] = milvus[0]["qps_16"]
    report["append_over_rebuild"] = max(r["append_over_rebuild"] for r in out["append"])


def quick_config(**changes) -> BenchConfig:
    return replace(QUICK, **changes)
