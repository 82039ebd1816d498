"""CBIR benchmark on the full UC Merced: off-the-shelf and trained-head map@20, throughput, peak memory.

    .venv/bin/python benchmarks/bench_cbir.py [--seeds 3] [--epochs 40] [--throughput-images 512] [--json]

Off-the-shelf is leave-one-out over all 2,100 scenes; the trained head is trained on the 80% train part of a
stratified split and evaluated test -> train (the same protocol as `rsir train cbir` + `rsir eval cbir`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UCM = Path(os.environ.get("RSIR_SHARED_DATA", REPO / ".." / "shared" / "data")).resolve() / "ucmerced"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--throughput-images", type=int, default=512)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not UCM.is_dir():
        sys.exit(f"UC Merced not found at {UCM} (set RSIR_SHARED_DATA)")

    from rsir.bench.throughput import compare_throughput
    from rsir.cbir.evaluation import evaluate_vectors, labels_of, split_of
    from rsir.cbir.space import Space
    from rsir.data.archives import open_archive
    from rsir.embed.features import apply_head
    from rsir.train.metric_head import TrainConfig, train_on_labels

    archive = open_archive(UCM)
    space = Space.load()
    emb = space.embed(archive, progress=not args.json)
    labels = labels_of(archive, emb.ids)
    loo = split_of(labels, "loo", 0)
    result: dict = {"encoder": space.encoder.config.name, "n_items": len(emb.ids)}
    result["off_the_shelf_loo"] = evaluate_vectors(emb.vectors, labels, loo.query, loo.gallery, k=20, loo=True)

    per_seed = []
    for seed in range(args.seeds):
        parts = split_of(labels, "holdout:0.2", seed)
        off = evaluate_vectors(emb.vectors, labels, parts.query, parts.gallery, k=20)
        start = time.perf_counter()
        head = train_on_labels(
            emb.vectors[parts.gallery],
            [labels[i] for i in parts.gallery],
            TrainConfig(epochs=args.epochs, seed=seed),
            progress=False,
        )
        seconds = time.perf_counter() - start
        trained = evaluate_vectors(apply_head(emb.vectors, head), labels, parts.query, parts.gallery, k=20)
        per_seed.append(
            {
                "seed": seed,
                "off_the_shelf": off["map@20"],
                "trained_head": trained["map@20"],
                "train_seconds": round(seconds, 1),
            }
        )
    result["holdout_80_20"] = per_seed
    result["trained_head_map@20_mean"] = statistics.mean(r["trained_head"] for r in per_seed)
    result["off_the_shelf_holdout_map@20_mean"] = statistics.mean(r["off_the_shelf"] for r in per_seed)
    result["throughput"] = compare_throughput(archive, space.encoder, args.throughput_images).to_dict()
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["targets"] = {
        "trained_head_map@20>=0.94": result["trained_head_map@20_mean"] >= 0.94,
        "index_throughput_ratio>=0.85": result["throughput"]["extract_ratio"] >= 0.85,
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(render(result))


def render(r: dict) -> str:
    t = r["throughput"]
    rows = [
        ("off-the-shelf map@20, leave-one-out", f"{r['off_the_shelf_loo']['map@20']:.3f}"),
        ("off-the-shelf map@20, 80/20 test->train", f"{r['off_the_shelf_holdout_map@20_mean']:.3f}"),
        (
            "trained head map@20, 80/20 test->train",
            f"{r['trained_head_map@20_mean']:.3f} "
            "(" + ", ".join(f"{s['trained_head']:.3f}" for s in r["holdout_80_20"]) + ")",
        ),
        ("head training seconds / seed", ", ".join(str(s["train_seconds"]) for s in r["holdout_80_20"])),
        ("index images/s (real pipeline)", f"{t['extract_images_per_s']:.1f}"),
        ("forward-only images/s", f"{t['forward_images_per_s']:.1f}"),
        ("ratio index / forward-only", f"{t['extract_ratio']:.3f}"),
        ("peak RSS MB", f"{r['peak_rss_mb']:.0f}"),
    ] + [(f"target {k}", "met" if v else "NOT met") for k, v in r["targets"].items()]
    width = max(len(a) for a, _ in rows)
    return "\n".join(f"{a.ljust(width)}  {b}" for a, b in rows)


if __name__ == "__main__":
    main()
