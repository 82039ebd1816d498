"""`--runtime onnx-int8` against `onnx` (float32) on UC Merced: speed and retrieval cost, in one run.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_int8.py [--seeds 1] [--epochs 40] [--json]

Forward-only images/s of both on the same pre-decoded batches (2 threads, back to back, 3 repeats), then
map@20 off the shelf (leave-one-out over 2,100 scenes) and with a trained head (80/20 holdout, test -> train)
from each runtime's own vectors.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UCM = Path(os.environ.get("RSIR_SHARED_DATA", REPO / ".." / "shared" / "data")).resolve() / "ucmerced"
RUNTIMES = ("onnx", "onnx-int8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    from rsir.bench.throughput import decoded_inputs, forward_throughput
    from rsir.cbir.evaluation import evaluate_vectors, labels_of, split_of
    from rsir.data.archives import open_archive
    from rsir.embed.features import apply_head, archive_features
    from rsir.models.encoders import load_encoder
    from rsir.models.runtime import set_runtime
    from rsir.train.metric_head import TrainConfig, train_on_labels

    torch.set_num_threads(args.threads)
    archive = open_archive(UCM)
    encoder = load_encoder()
    inputs = decoded_inputs(archive, encoder, 64)
    speed = []
    for _ in range(3):
        row = {rt: forward_throughput(set_runtime(encoder, rt), 128, 32, inputs) for rt in RUNTIMES}
        row["load_1min"] = os.getloadavg()[0]
        speed.append({k: round(v, 2) for k, v in row.items()})
    result: dict = {"forward_images_per_s": speed}
    result["int8_speedup"] = round(statistics.median(r["onnx-int8"] / r["onnx"] for r in speed), 2)
    for rt in RUNTIMES:
        emb = archive_features(archive, set_runtime(encoder, rt), progress=not args.json)
        labels = labels_of(archive, emb.ids)
        loo = split_of(labels, "loo", 0)
        row = {"loo_map@20": evaluate_vectors(emb.vectors, labels, loo.query, loo.gallery, k=20, loo=True)["map@20"]}
        heads = []
        for seed in range(args.seeds):
            parts = split_of(labels, "holdout:0.2", seed)
            config = TrainConfig(epochs=args.epochs, seed=seed)
            train = [labels[i] for i in parts.gallery]
            head = train_on_labels(emb.vectors[parts.gallery], train, config, progress=False)
            vectors = apply_head(emb.vectors, head)
            heads.append(evaluate_vectors(vectors, labels, parts.query, parts.gallery, k=20)["map@20"])
        row["head_map@20"] = round(statistics.mean(heads), 4)
        row["loo_map@20"] = round(row["loo_map@20"], 4)
        result[rt] = row
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"forward-only images/s (onnx vs onnx-int8, back to back): {speed}; int8 speed-up {result['int8_speedup']}")
    for rt in RUNTIMES:
        row = result[rt]
        print(f"{rt:<10} map@20 off the shelf (LOO) {row['loo_map@20']:.4f}, head {row['head_map@20']:.4f}")


if __name__ == "__main__":
    sys.exit(main())
