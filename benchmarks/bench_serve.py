"""Load benchmark of `rsir serve`: search-by-id over loopback on an index of >= 100,000 items, driven by wrk.

The index holds the real UC Merced embeddings (2,100 scenes, default encoder; features come from the
embedding cache after the first run) plus generated vectors: each is a real scene's vector plus Gaussian
noise, re-normalised, so the neighbourhoods look like an archive's rather than uniform noise. Generated
items point at their source scene's file (thumbnails work) and carry a synthetic date and bounding box.

The server is `rsir serve` in a subprocess (uvicorn, N workers); wrk (Debian package `wrk`) requests
`/api/search/id?id=<random item>&k=K` for a fixed time over C connections. Any non-2xx answer, socket
error or timeout counts as an error.

    .venv/bin/python benchmarks/bench_serve.py                 # 100k items, 20 s, table
    .venv/bin/python benchmarks/bench_serve.py --json
    .venv/bin/python benchmarks/bench_serve.py --workers 2 --connections 64 --duration 30
    .venv/bin/python benchmarks/bench_serve.py --index-type hnsw       # approximate index, built once
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import quote

import numpy as np

REPO = Path(__file__).resolve().parents[1]
UCM = Path(os.environ.get("RSIR_SHARED_DATA", REPO / ".." / "shared" / "data")).resolve() / "ucmerced"

WRK_SCRIPT = """
local ids = {}
for line in io.lines("%(ids)s") do ids[#ids + 1] = line end
math.randomseed(%(seed)d)
request = function()
  return wrk.format("GET", "/api/search/id?k=%(k)d&id=" .. ids[math.random(#ids)])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RSIR-JSON {"requests": %%d, "seconds": %%.3f, "p50_ms": %%.3f, "p90_ms": %%.3f, "p99_ms": %%.3f, ' ..
    '"max_ms": %%.3f, "mean_ms": %%.3f, "errors": {"connect": %%d, "read": %%d, "write": %%d, "status": %%d, ' ..
    '"timeout": %%d}}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3, latency.mean / 1e3,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def ucm_index(out: Path) -> Path:
    """The UC Merced index with the default encoder (built once; embeddings come from the cache)."""
    from rsir.cbir.indexing import index_archive
    from rsir.cbir.space import Space
    from rsir.data.archives import open_archive

    if not (out / "manifest.json").is_file():
        if not UCM.is_dir():
            raise SystemExit(f"UC Merced not found at {UCM} (set RSIR_SHARED_DATA)")
        index_archive(open_archive(UCM), out, Space.load(), progress=False)
    return out


def build_big_index(
    source: Path, out: Path, n_items: int, noise: float = 0.03, seed: int = 0, index_type: str = "flat"
) -> Path:
    """Index of ``n_items``: every row of ``source`` plus generated neighbours of random source rows."""
    from dataclasses import replace

    from rsir.index.faiss_index import IndexParams, SearchIndex, build_index, save_index

    src = SearchIndex(source)
    m = src.manifest
    real = np.asarray(src.vectors, dtype=np.float32)
    n_real = len(real)
    rng = np.random.default_rng(seed)
    origin = rng.integers(0, n_real, max(0, n_items - n_real))
    fake = real[origin] + noise * rng.standard_normal((len(origin), real.shape[1]), dtype=np.float32)
    fake /= np.linalg.norm(fake, axis=1, keepdims=True)
    vectors = np.concatenate([real, fake])
    days = rng.integers(0, 3650, len(vectors))
    west, south = rng.uniform(-180, 179, len(vectors)), rng.uniform(-90, 89, len(vectors))
    meta = [
        {
            **(m.meta[i] if i < n_real else m.meta[origin[i - n_real]]),
            "date": (date(2015, 1, 1) + timedelta(days=int(days[i]))).isoformat(),
            "bbox": [round(west[i], 4), round(south[i], 4), round(west[i] + 0.01, 4), round(south[i] + 0.01, 4)],
        }
        for i in range(len(vectors))
    ]
    rows = np.concatenate([np.arange(n_real), origin])
    manifest = replace(
        m,
        ids=m.ids + [f"generated/{i:07d}" for i in range(len(origin))],
        paths=[m.paths[r] for r in rows],
        labels=[m.labels[r] for r in rows],
        meta=meta,
        params={**m.params, "generated": {"n": len(origin), "noise": noise, "seed": seed, "source": str(source)}},
    )
    manifest.index_type = index_type
    save_index(out, build_index(vectors, IndexParams(index_type=index_type)), vectors, manifest)
    return out


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"rsir serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("rsir serve did not come up in time")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_wrk(url: str, ids: list[str], args: argparse.Namespace, workdir: Path) -> dict:
    rng = np.random.default_rng(args.seed)
    sample = rng.choice(len(ids), size=min(len(ids), 5000), replace=False)
    (workdir / "ids.txt").write_text("\n".join(quote(ids[i], safe="") for i in sample) + "\n")
    script = workdir / "search.lua"
    script.write_text(WRK_SCRIPT % {"ids": workdir / "ids.txt", "seed": args.seed, "k": args.k})
    threads = min(args.threads, args.connections)  # wrk needs a connection per thread
    cmd = [
        "wrk", f"-t{threads}", f"-c{args.connections}", f"-d{args.duration}s", "--timeout", "10s",
        "-s", str(script), url,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RSIR-JSON "))
    return json.loads(line[len("RSIR-JSON ") :])


def serve_and_load(index: Path, args: argparse.Namespace, workdir: Path) -> dict:
    from rsir.index.manifest import IndexManifest

    manifest = IndexManifest.read(index)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "rsir.cli.main", "serve", str(index), "--port", str(port)]
    cmd += ["--workers", str(args.workers), "--log-level", "warning", "--cache-dir", str(workdir / "thumbs")]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=sys.stderr)  # keep --json output clean
    try:
        started = time.perf_counter()
        _wait_ready(url, proc)
        ready_s = time.perf_counter() - started
        urllib.request.urlopen(f"{url}/api/search/id?id={quote(manifest.ids[0], safe='')}&k={args.k}").read()
        load = run_wrk(url, manifest.ids, args, workdir)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    errors = sum(load["errors"].values())
    return {
        "items": len(manifest.ids),
        "dim": manifest.dim,
        "index_type": manifest.index_type,
        "workers": args.workers,
        "connections": args.connections,
        "k": args.k,
        "seconds": load["seconds"],
        "requests": load["requests"],
        "requests_per_s": round(load["requests"] / load["seconds"], 1),
        "p50_ms": round(load["p50_ms"], 2),
        "p90_ms": round(load["p90_ms"], 2),
        "p99_ms": round(load["p99_ms"], 2),
        "max_ms": round(load["max_ms"], 2),
        "errors": errors,
        "error_kinds": load["errors"],
        "startup_s": round(ready_s, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }


def render(r: dict) -> str:
    cols = ["items", "dim", "index_type", "workers", "connections", "k", "requests", "requests_per_s"]
    cols += ["p50_ms", "p90_ms", "p99_ms", "max_ms", "errors"]
    widths = [max(len(c), len(str(r[c]))) for c in cols]
    line = lambda vals: "  ".join(str(v).rjust(w) for v, w in zip(vals, widths, strict=True))  # noqa: E731
    head = f"rsir serve, search-by-id over loopback, {r['seconds']:.0f} s with wrk ({r['machine']['cpus']} CPUs)"
    return "\n".join([head, line(cols), line(["-" * w for w in widths]), line([r[c] for c in cols])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000, help="index size (real UC Merced + generated)")
    parser.add_argument("--duration", type=int, default=20, help="seconds of load")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (each holds its own index copy)")
    parser.add_argument("-k", type=int, default=10, help="results per query")
    parser.add_argument("--index-type", default="flat", choices=["flat", "hnsw", "ivfpq"], help="FAISS index kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="where the indexes are kept (reused)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    from rsir.embed.cache import cache_root

    workdir = args.workdir or cache_root() / "bench-serve"
    workdir.mkdir(parents=True, exist_ok=True)
    big = workdir / f"ucm-plus-generated-{args.items}" if args.index_type == "flat" else None
    big = big or workdir / f"ucm-plus-generated-{args.items}-{args.index_type}"
    if not (big / "manifest.json").is_file():
        build_big_index(ucm_index(workdir / "ucm"), big, args.items, seed=args.seed, index_type=args.index_type)
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        result = serve_and_load(big, args, Path(tmp))
    print(json.dumps(result, indent=1) if args.json else render(result))
    if result["errors"]:
        raise SystemExit(f"{result['errors']} errors: {result['error_kinds']}")


if __name__ == "__main__":
    main()
