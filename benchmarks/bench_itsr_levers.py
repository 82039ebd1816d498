"""Lever experiment for text-ITSR on the v2 synth set: finer, earlier image tokens for TFF or the gate.

The default tokens are EfficientNet-Lite0's last map, 7 x 7 x 1280 at 224 px: one token covers 1/49 of
the scene, so a change of 3% of the area is a fraction of one token. This trains TFF or the change gate
on the output of an earlier stage instead (``--n-tail 5``: after block 10, 14 x 14 x 112), either
pooled to 7 x 7 or at full 14 x 14 resolution, with the usual global skip (the final globals), and
scores it like bench_itsr.py (changed-pair text->pair on the full test gallery, and with shuffled before
images). Run bench_itsr.py first: it makes the set and caches the globals and captions this script reuses.

    .venv/bin/python benchmarks/bench_itsr_levers.py --dataset ~/.cache/rsir/bench-itsr/synth-ucmerced-p2500-s0-v2
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

# variant -> (fusion, TFF settings) on the earlier-stage tokens
VARIANTS = {
    "tff-fine7": ("tff", {"grid": 7}),  # 14x14 pooled to 7x7 (earlier features, default resolution)
    "tff-fine14": ("tff", {"grid": None, "d_model": 64, "layers": 1, "heads": 2}),  # full 14x14, lighter
    "gate-fine14": ("gate", {}),  # change-gated pooling of all 14x14 tokens
    "gate-sharp8-fine14": ("gate-sharp8", {}),  # the same, a sharper gate at the start
}


def fine_features(data: Path, split: str, n_tail: int, progress: bool):
    """SplitFeatures of ``split`` whose tokens are the trunk's map [N, 2, h*w, C] (globals stay the final ones)."""
    from rsir.data.changecap import open_change_captions
    from rsir.itsr.features import default_cache_dir, split_features, trunk_features
    from rsir.itsr.pipeline import Encoders

    archive = open_change_captions(data)
    enc = Encoders("efficientnet-lite0", "all-minilm-l6-v2")
    cache = default_cache_dir(data, data)
    maps = trunk_features(archive.split(split).pairs, enc.image, n_tail, cache, split, progress=progress)
    feats = split_features(archive, split, enc, cache, progress)
    n, dates, c, h, w = maps.shape
    tokens = np.ascontiguousarray(np.asarray(maps).reshape(n, dates, c, h * w).transpose(0, 1, 3, 2))
    return replace(feats, tokens=tokens)


def fine_features_maps(data: Path, split: str, n_tail: int) -> None:
    from rsir.data.changecap import open_change_captions
    from rsir.itsr.features import default_cache_dir, trunk_features
    from rsir.itsr.pipeline import Encoders

    enc = Encoders("efficientnet-lite0", "all-minilm-l6-v2")
    pairs = open_change_captions(data).split(split).pairs
    trunk_features(pairs, enc.image, n_tail, default_cache_dir(data, data), split, progress=True)


def run(data: Path, variant: str, seed: int, epochs: int, n_tail: int, work: Path, feats: dict) -> dict:
    import torch

    from rsir.itsr.evaluate import evaluate
    from rsir.itsr.model import ITSRConfig, ITSRModel, load_checkpoint
    from rsir.itsr.pipeline import save_best_checkpoint
    from rsir.models.fusion import TFFConfig
    from rsir.train.itsr import ITSRTrainConfig, train_itsr

    train_f = feats["train"]
    fusion, settings = VARIANTS[variant]
    tff = TFFConfig(**settings).to_dict()
    config = ITSRTrainConfig(fusion=fusion, epochs=epochs, seed=seed, tff=tff)
    model_config = ITSRConfig(
        fusion=fusion,
        encoder="efficientnet-lite0",
        encoder_hash="trunk",
        image_dim=train_f.globals_.shape[-1],
        token_dim=train_f.tokens.shape[-1],
        n_tokens=train_f.tokens.shape[-2],
        text_encoder="all-minilm-l6-v2",
        text_hash="-",
        text_dim=train_f.text.shape[-1],
        tff=tff,
    )
    torch.manual_seed(seed)
    out = work / "runs" / data.name / f"{variant}-t{n_tail}-s{seed}-e{epochs}"
    summary = train_itsr(
        ITSRModel(model_config), train_f, feats["val"], config, out, progress=False,
        evaluate=evaluate, save_best=save_best_checkpoint,
    )  # fmt: skip
    model, _ = load_checkpoint(out)
    test = evaluate(model, feats["test"], detail=True)
    test["shuffled"] = evaluate(model, feats["test"], detail=True, shuffle_seed=seed)
    return {"fusion": variant, "seed": seed, "train_seconds": summary["train_seconds"], **test}


def main(argv: list[str] | None = None) -> int:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_itsr import aggregate, table

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", type=Path, required=True, help="a v2 synth set made by bench_itsr.py")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--n-tail", type=int, default=5, help="blocks left out: 5 = after block 10 (14x14x112)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", type=Path, default=Path.home() / ".cache" / "rsir" / "bench-itsr")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    for split in ("train", "val", "test"):  # the trunk maps first: bench_itsr.py may still be caching the rest
        fine_features_maps(args.dataset, split, args.n_tail)
    feats = {s: fine_features(args.dataset, s, args.n_tail, True) for s in ("train", "val", "test")}
    runs = []
    for variant in args.variants:
        for seed in args.seeds:
            runs.append(run(args.dataset, variant, seed, args.epochs, args.n_tail, args.work, feats))
            r = runs[-1]
            print(
                f"{variant} seed {seed}: changed t2i R@10 {r['changed']['t2i']['r@10']:.2f} "
                f"(shuffled {r['shuffled']['changed']['t2i']['r@10']:.2f})",
                flush=True,
            )
    agg = aggregate(runs)
    result = {"dataset": str(args.dataset), "n_tail": args.n_tail, "aggregate": agg, "runs": runs}
    result["wall_seconds"] = round(time.perf_counter() - t0, 1)
    tag = "_".join(args.variants) + "-seeds" + "".join(map(str, args.seeds))  # one file per experiment
    (args.work / f"levers-{args.dataset.name}-{tag}.json").write_text(json.dumps(result, indent=2))
    print(table(agg))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
