"""CBIR benchmark on the full UC Merced: off-the-shelf and trained-head map@20, throughput, peak memory.

    .venv/bin/python benchmarks/bench_cbir.py [--seeds 3] [--epochs 40] [--throughput-images 512] [--json]
    .venv/bin/python benchmarks/bench_cbir.py --finetune 1 --throughput-images 0   # + the encoder's last block

Off-the-shelf is leave-one-out over all 2,100 scenes; the trained head is trained on the 80% train part of a
stratified split and evaluated test -> train (the same protocol as `rsir train cbir` + `rsir eval cbir`).
With `--finetune N` each seed also fine-tunes the
encoder's last N blocks (`rsir train cbir --finetune N`); the frozen trunk's feature maps are computed once for
all seeds and the fine-tuned tail embeds every scene from them (what `eval cbir --head` computes from pixels).
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--throughput-images", type=int, default=512)
    ap.add_argument("--finetune", type=int, default=0, help="also fine-tune the encoder's last N blocks")
    ap.add_argument("--runtime", default="auto", help="frozen encoder runtime: auto, torch, onnx, onnx-int8")
    ap.add_argument("--json", action="store_true")
    return ap.parse_args(argv)


def load_space(args: argparse.Namespace):
    """The frozen encoder on ``--runtime``; an unknown runtime is refused (exit message) before weights load."""
    from rsir.cbir.space import Space

    try:
        return Space.load(runtime=args.runtime)
    except ValueError as e:  # Space.load's only ValueError without a head: the runtime
        raise SystemExit(f"--runtime: {e}") from None


def main() -> None:
    args = parse_args()
    if not UCM.is_dir():
        sys.exit(f"UC Merced not found at {UCM} (set RSIR_SHARED_DATA)")

    from rsir.bench.throughput import compare_throughput
    from rsir.cbir.evaluation import evaluate_vectors, labels_of, split_of
    from rsir.data.archives import open_archive
    from rsir.embed.features import apply_head
    from rsir.train.metric_head import TrainConfig, train_on_labels

    archive = open_archive(UCM)
    space = load_space(args)
    emb = space.embed(archive, progress=not args.json)
    labels = labels_of(archive, emb.ids)
    loo = split_of(labels, "loo", 0)
    result: dict = {"encoder": space.encoder.config.name, "n_items": len(emb.ids)}
    result["off_the_shelf_loo"] = evaluate_vectors(emb.vectors, labels, loo.query, loo.gallery, k=20, loo=True)

    trunk_maps = _trunk_maps(archive, emb.ids, args.finetune, progress=not args.json) if args.finetune else None
    per_seed = []
    for seed in range(args.seeds):
        parts = split_of(labels, "holdout:0.2", seed)
        off = evaluate_vectors(emb.vectors, labels, parts.query, parts.gallery, k=20)
        start = time.perf_counter()
        config = TrainConfig(epochs=args.epochs, seed=seed)
        train_labels = [labels[i] for i in parts.gallery]
        if trunk_maps is None:
            vectors = emb.vectors
            head = train_on_labels(vectors[parts.gallery], train_labels, config, progress=False)
        else:
            vectors, head = _finetuned(trunk_maps, parts.gallery, train_labels, config, args.finetune)
        seconds = time.perf_counter() - start
        trained = evaluate_vectors(apply_head(vectors, head), labels, parts.query, parts.gallery, k=20)
        print(f"seed {seed}: map@20 {trained['map@20']:.4f} in {seconds:.0f} s", file=sys.stderr, flush=True)
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
    result["finetuned_blocks"] = args.finetune
    if args.throughput_images:
        result["throughput"] = compare_throughput(archive, space.encoder, args.throughput_images).to_dict()
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["targets"] = {"trained_head_map@20>=0.94": result["trained_head_map@20_mean"] >= 0.94}
    if args.finetune:
        result["targets"]["finetuned_map@20>=0.97"] = result["trained_head_map@20_mean"] >= 0.97
    if "throughput" in result:
        result["targets"]["index_throughput_ratio>=0.85"] = result["throughput"]["extract_ratio"] >= 0.85
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(render(result))


def _trunk_maps(archive, ids: list[str], n_tail: int, progress: bool):
    """The frozen trunk's outputs for every item in ``ids`` order (shared by the seeds)."""
    from rsir.models.encoders import load_encoder
    from rsir.train.finetune import trunk_outputs

    encoder = load_encoder()
    row_of = {it.id: i for i, it in enumerate(archive.items)}
    trunk, _ = encoder.split(n_tail)
    return trunk_outputs(trunk, archive, [row_of[i] for i in ids], encoder, progress=progress)


def _finetuned(maps, train_rows, train_labels, config, n_tail: int):
    """Fine-tune a fresh encoder's tail + head on the train rows; every item's features from the tuned tail."""
    import torch
    import torch.nn.functional as F

    from rsir.models.encoders import load_encoder
    from rsir.train.finetune import finetune_on_maps

    encoder = load_encoder()
    head = finetune_on_maps(encoder, maps[train_rows], train_labels, config, n_tail=n_tail, progress=False)
    _, tail = encoder.split(n_tail)
    with torch.inference_mode():
        feats = torch.cat([F.normalize(tail(chunk).mean(dim=1), dim=-1) for chunk in maps.split(64)])
    return feats.numpy(), head


def render(r: dict) -> str:
    t = r.get("throughput")
    rows = [
        ("off-the-shelf map@20, leave-one-out", f"{r['off_the_shelf_loo']['map@20']:.3f}"),
        ("off-the-shelf map@20, 80/20 test->train", f"{r['off_the_shelf_holdout_map@20_mean']:.3f}"),
        (
            "trained head map@20, 80/20 test->train",
            f"{r['trained_head_map@20_mean']:.3f} "
            "(" + ", ".join(f"{s['trained_head']:.3f}" for s in r["holdout_80_20"]) + ")",
        ),
        ("head training seconds / seed", ", ".join(str(s["train_seconds"]) for s in r["holdout_80_20"])),
        ("encoder blocks fine-tuned", str(r["finetuned_blocks"])),
    ]
    if t:
        rows += [
            ("index images/s (real pipeline)", f"{t['extract_images_per_s']:.1f}"),
            ("forward-only images/s", f"{t['forward_images_per_s']:.1f}"),
            ("ratio index / forward-only", f"{t['extract_ratio']:.3f}"),
        ]
    rows += [("peak RSS MB", f"{r['peak_rss_mb']:.0f}")] + [
        (f"target {k}", "met" if v else "NOT met") for k, v in r["targets"].items()
    ]
    width = max(len(a) for a, _ in rows)
    return "\n".join(f"{a.ljust(width)}  {b}" for a, b in rows)


if __name__ == "__main__":
    main()
