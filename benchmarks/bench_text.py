"""Benchmark of text <-> scene retrieval on the real UCM-Captions (Qu et al. 2016), next to published rows.

One command: caches the frozen features once (offline EfficientNet-Lite0 + MiniLM), trains each variant
for each seed with `rsir text train`'s code, evaluates on the standard test split with the published
protocol (210 images, 1,050 caption queries; t2i hits only its own image, i2t hits when any own caption is
in the top k; mR = mean of the six) plus duplicate-aware t2i, and prints a table (mean +- std over seeds;
``ensemble`` = the seeds' similarity matrices averaged). Re-running reuses finished runs.

    .venv/bin/python benchmarks/bench_text.py                       # frozen + the default (fine-tuned tail), 3 seeds
    .venv/bin/python benchmarks/bench_text.py --controls --ensemble # + controls, the six-model ensemble
    .venv/bin/python benchmarks/bench_text.py --variants frozen --seeds 0 --json
    .venv/bin/python benchmarks/bench_text.py --latency             # + text search latency at the service
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from rsir.text.bridge import Bridge
from rsir.text.expansion import OFF
from rsir.text.querybank import OFF as QB_OFF

REPO = Path(__file__).resolve().parents[1]
KEYS = ("r@1", "r@5", "r@10")
AUG = {"augment": True}
BRIDGE = {"bridge": Bridge()}  # the training-memory bridge (rsir.text.bridge), off by default
NOQ = {"querybank": QB_OFF}  # rows published before querybank normalisation became the default
NOX = {"expansion": OFF, **NOQ}  # rows published before gallery expansion became the default
AUG_X = {**AUG, **NOQ}
# name -> (rsir text train settings, other arguments of rsir.text.pipeline.train)
VARIANTS = {
    "frozen": ({"finetune": 0}, NOX),
    "frozen-60ep": ({"finetune": 0, "epochs": 60}, NOX),
    "frozen-lr1e-3": ({"finetune": 0, "lr": 1e-3}, NOX),
    "frozen-bs256": ({"finetune": 0, "batch_size": 256}, NOX),
    "frozen-dim512": ({"finetune": 0, "dim": 512}, NOX),
    "frozen-bs32": ({"finetune": 0, "batch_size": 32}, NOX),
    "ft1": ({"finetune": 1}, NOX),
    "ft1-aug": ({"finetune": 1}, {**AUG, **NOX}),
    "ft1-aug-10ep": ({"finetune": 1, "epochs": 10}, {**AUG, **NOX}),
    "frozen-60ep-lr1e-3": ({"finetune": 0, "epochs": 60, "lr": 1e-3}, NOX),
    # control: the frozen-60ep training on a derangement of the train images (must score near chance)
    "control-shuffled-train": ({"finetune": 0, "epochs": 60}, {"control": "shuffle-images", **NOX}),
    # with gallery expansion k=3, weight 0.3 (second pass)
    "frozen-x": ({"finetune": 0}, NOQ),
    "frozen-60ep-x": ({"finetune": 0, "epochs": 60}, NOQ),
    "ft1-aug-10ep-x": ({"finetune": 1, "epochs": 10}, AUG_X),
    "ft2-aug-10ep-x": ({"finetune": 2, "epochs": 10}, AUG_X),
    "control-shuffled-train-x": ({"finetune": 0}, {"control": "shuffle-images", **NOQ}),
    # third pass: the text encoder's last N layers fine-tuned too (-tN, lr of those layers in the name)
    "ft1-aug-10ep-x-t2": ({"finetune": 1, "epochs": 10, "text_finetune": 2}, AUG_X),
    "ft1-aug-10ep-x-t2-lr1e-4": ({"finetune": 1, "epochs": 10, "text_finetune": 2, "text_finetune_lr": 1e-4}, AUG_X),
    "ft1-aug-10ep-x-t2-lr3e-4": ({"finetune": 1, "epochs": 10, "text_finetune": 2, "text_finetune_lr": 3e-4}, AUG_X),
    "ft1-aug-10ep-x-t6-lr1e-4": ({"finetune": 1, "epochs": 10, "text_finetune": 6, "text_finetune_lr": 1e-4}, AUG_X),
    # -q: querybank normalisation by the distinct training captions, beta 10 (rsir.text.querybank)
    "ft1-aug-10ep-x-q": ({"finetune": 1, "epochs": 10}, AUG),
    "frozen-x-q": ({"finetune": 0}, {}),
    "ft1-aug-20ep-x-q-lr5e-5": ({"finetune": 1, "epochs": 20, "finetune_lr": 5e-5}, AUG),
    "ft1-aug-10ep-x-q-t2-lr1e-4": ({"finetune": 1, "epochs": 10, "text_finetune": 2, "text_finetune_lr": 1e-4}, AUG),
    "control-shuffled-train-x-q": ({"finetune": 0}, {"control": "shuffle-images"}),
    # -b: + the training-memory bridge (rsir.text.bridge; k=10, tau 0.02, temperature 0.05, weights 8 / 0.2)
    "ft1-aug-10ep-x-q-b": ({"finetune": 1, "epochs": 10}, {**AUG, **BRIDGE}),
    "frozen-x-q-b": ({"finetune": 0}, BRIDGE),
    "control-shuffled-train-x-q-b": ({"finetune": 0}, {"control": "shuffle-images", **BRIDGE}),
}
# test-time controls of each trained run (rsir text eval --control): near chance for a model that reads both
EVAL_CONTROLS = ("shuffle-images", "constant-text")
PUBLISHED = [  # i2t R@1/5/10, t2i R@1/5/10, mR (the sources: PE-RSITR and RemoteCLIP tables)
    ("zero-shot CLIP ViT-B/32", (10.95, 34.76, 55.71), (7.33, 35.14, 54.57), 33.08),
    ("AMFMN-fusion (TGRS 2022)", (16.67, 45.71, 68.57), (12.86, 53.24, 79.43), 46.08),
    ("Rahhal et al. (JSTARS 2022), ViT-B/32", (19.04, 53.33, 77.61), (19.33, 64.00, 91.42), 54.12),
    ("full fine-tuned CLIP ViT-B/32", (17.14, 55.24, 79.52), (13.90, 56.95, 91.81), 52.43),
    ("PE-RSITR (TGRS 2023)", (22.71, 55.81, 80.33), (18.82, 62.84, 93.72), 55.71),
    ("RemoteCLIP ViT-B/32 (pretraining includes UCM train)", (20.48, 59.85, 83.33), (18.67, 61.52, 94.29), 56.36),
]


def _args(argv: list[str] | None) -> argparse.Namespace:
    shared = Path(os.environ.get("RSIR_SHARED_DATA", REPO / ".." / "shared" / "data")).resolve()
    cache = Path(os.environ.get("RSIR_CACHE", Path.home() / ".cache" / "rsir"))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--captions", type=Path, default=shared / "ucm-captions" / "dataset.json")
    p.add_argument("--images", type=Path, default=shared / "ucmerced")
    p.add_argument("--work", type=Path, default=cache / "bench-text", help="checkpoints")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=["frozen-x-q", "ft1-aug-10ep-x-q"], choices=sorted(VARIANTS))
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy box)")
    p.add_argument("--latency", action="store_true", help="also time text queries at the search service")
    p.add_argument(
        "--ensemble", action="store_true", help="also: one ensemble of every run of every variant (z-scored)"
    )
    p.add_argument(
        "--controls", action="store_true", help="also: each run with its test gallery shuffled / one constant query"
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON only")
    return p.parse_args(argv)


def _run(args, name: str, seed: int) -> tuple[dict, np.ndarray, np.ndarray, list[str]]:
    """(test scores, similarity [M, N], caption->image, captions) of one trained variant and seed."""
    from rsir.text.bridge import gallery_bridge_for
    from rsir.text.expansion import expand_gallery, expansion_of
    from rsir.text.pipeline import (
        embed,
        evaluate_checkpoint,
        open_model,
        score_matrices,
        split_features_for,
        text_config,
        train,
    )
    from rsir.text.querybank import offsets_for

    settings, extra = VARIANTS[name]
    out = args.work / name / f"seed{seed}"
    config = text_config(**{"epochs": args.epochs, **settings, "seed": seed})
    t0 = time.perf_counter()
    summary = train(args.captions, args.images, out, config, progress=False, **extra)
    model, manifest, enc = open_model(out)
    feats = split_features_for(enc, args.captions, args.images, "test", None, progress=False)
    image_emb, text_emb = embed(model, feats)
    gallery = expand_gallery(image_emb, expansion_of(manifest))  # text queries' gallery (rsir.text.expansion)
    offsets = offsets_for(out, manifest, gallery)  # querybank normalisation (rsir.text.querybank), or None
    scores = evaluate_checkpoint(out, args.captions, args.images, "test", progress=False)
    scores["train_seconds"] = summary["train_seconds"]
    scores["best_epoch"] = summary["best_epoch"]
    scores["wall_seconds"] = round(time.perf_counter() - t0, 1)
    if getattr(args, "controls", False):
        scores["controls"] = {
            c: evaluate_checkpoint(
                out, args.captions, args.images, "test", progress=False, control=c, control_seed=seed
            )
            for c in EVAL_CONTROLS
        }
    bridge = gallery_bridge_for(out, manifest, image_emb)  # training-memory bridge (rsir.text.bridge), or None
    sims = score_matrices(image_emb, text_emb, gallery, offsets, bridge)  # (image queries', text queries') scores
    return scores, sims, np.asarray(feats.caption_pair), feats.captions


def zscore(sim: np.ndarray) -> np.ndarray:
    """A similarity matrix on a common scale (mean 0, std 1), so models of other temperatures mix fairly."""
    return (sim - sim.mean()) / sim.std()


def _row(label: str, runs: list[dict]) -> dict:
    row = {"variant": label, "seeds": len(runs)}
    for d in ("i2t", "t2i", "t2i_dup_aware"):
        for k in KEYS:
            v = [r[d][k] for r in runs]
            row[f"{d} {k}"] = (float(np.mean(v)), float(np.std(v)))
    v = [r["mR"] for r in runs]
    row["mR"] = (float(np.mean(v)), float(np.std(v)))
    row["train_seconds"] = float(np.mean([r.get("train_seconds", 0.0) for r in runs]))
    return row


def benchmark(args) -> dict:
    from rsir.text.pipeline import similarity_scores

    rows, per_seed, every = [], {}, []
    for name in args.variants:
        runs, sims = [], []
        for seed in args.seeds:
            scores, sim, caption_image, captions = _run(args, name, seed)
            runs.append(scores)
            sims.append(sim)
            every.append(sim)
            if not args.json:
                print(f"{name} seed {seed}: mR {scores['mR']:.2f} ({scores['wall_seconds']}s)", file=sys.stderr)
        per_seed[name] = runs
        rows.append(_row(name, runs))
        for control in EVAL_CONTROLS if "controls" in runs[0] else ():
            rows.append(_row(f"{name}, control: test {control}", [r["controls"][control] for r in runs]))
        if len(sims) > 1:
            i2t_sim, t2i_sim = np.mean(sims, 0)  # the seeds' similarity matrices averaged, per direction
            mean_sim = similarity_scores(i2t_sim, caption_image, captions, t2i_sim)
            rows.append(_row(f"{name} ensemble of {len(sims)}", [mean_sim]))
    if args.ensemble and len(args.variants) > 1:
        i2t_sim, t2i_sim = np.mean([[zscore(s) for s in pair] for pair in every], 0)
        mixed = similarity_scores(i2t_sim, caption_image, captions, t2i_sim)
        rows.append(_row(f"ensemble of {' + '.join(args.variants)} ({len(every)} runs, z-scored)", [mixed]))
    out = {"rows": rows, "runs": per_seed, "published": PUBLISHED}
    if args.latency:
        out["latency"] = latency(args, args.variants[-1], args.seeds[0])
    return out


def latency(args, name: str, seed: int, queries: int = 200) -> dict:
    """Text queries at the search service (FastAPI app in-process, UC Merced index): ms per query after load."""
    from fastapi.testclient import TestClient

    from rsir.app.search import create_search_app
    from rsir.data.archives import open_archive
    from rsir.data.captions import open_scene_captions

    index = args.work / "index-ucmerced"
    if not (index / "manifest.json").is_file():
        _index_from_cache(args, index)
    sentences = [c for p in open_scene_captions(args.captions, args.images, "test").pairs for c in p.captions]
    t0 = time.perf_counter()
    app = create_search_app(index, text_model=args.work / name / f"seed{seed}")
    load_s = time.perf_counter() - t0
    took, wall, cpu = [], [], []
    with TestClient(app) as client:
        client.get("/api/search/text", params={"q": sentences[0], "k": 20})  # first call: lazy imports
        for q in sentences[:queries]:
            t, c = time.perf_counter(), time.process_time()
            r = client.get("/api/search/text", params={"q": q, "k": 20})
            wall.append(1000 * (time.perf_counter() - t))
            cpu.append(1000 * (time.process_time() - c))
            took.append(r.json()["took_ms"])
    return {
        "variant": name,
        "index_items": len(open_archive(args.images)),
        "queries": len(took),
        "load_seconds": round(load_s, 2),
        "took_ms_median": float(np.median(took)),
        "took_ms_p95": float(np.percentile(took, 95)),
        "request_ms_median": float(np.median(wall)),
        "request_ms_p95": float(np.percentile(wall, 95)),
        # CPU time of the whole request (client and server threads of this process): what it costs on a free
        # core, where wall time on a machine shared with other jobs also counts the waits for a core.
        "request_cpu_ms_median": float(np.median(cpu)),
        "request_cpu_ms_p95": float(np.percentile(cpu, 95)),
    }


def _index_from_cache(args, out: Path) -> None:
    """A flat index of the whole archive from the cached scene globals (the encoder forward `rsir index`
    runs: the token mean of the same encoder), so the latency run does not encode 2,100 images again."""
    from rsir import __version__
    from rsir.data.archives import open_archive
    from rsir.data.captions import open_scene_captions
    from rsir.index.faiss_index import IndexParams, build_index, save_index
    from rsir.index.manifest import IndexManifest
    from rsir.itsr.pipeline import Encoders
    from rsir.text.features import scene_globals
    from rsir.text.pipeline import default_cache

    enc = Encoders("efficientnet-lite0", "all-minilm-l6-v2")
    scenes = open_scene_captions(args.captions, args.images)
    vectors = {}
    for split in ("train", "val", "test"):
        pairs = scenes.split(split).pairs
        for p, v in zip(pairs, scene_globals(pairs, enc.image, default_cache(), split, progress=False), strict=True):
            vectors[p.id] = v / np.linalg.norm(v)
    items = [it for it in open_archive(args.images).items if it.id in vectors]
    emb = np.stack([vectors[it.id] for it in items]).astype(np.float32)
    params = IndexParams(index_type="flat")
    manifest = IndexManifest(
        encoder=enc.image.config.name,
        weights_hash=enc.image.weights_hash,
        dim=int(emb.shape[1]),
        metric="cosine",
        index_type="flat",
        ids=[it.id for it in items],
        paths=[str(it.path.resolve()) for it in items],
        labels=[list(it.labels) for it in items],
        archive_root=str(Path(args.images).resolve()),
        params={k: v for k, v in params.__dict__.items() if v is not None},
        meta=[it.meta for it in items],
        rsir_version=__version__,
    )
    save_index(out, build_index(emb, params), emb, manifest)


def _fmt(pair) -> str:
    return f"{pair[0]:.2f} ± {pair[1]:.2f}" if pair[1] else f"{pair[0]:.2f}"


def table(result: dict) -> str:
    head = "| method | i2t R@1 | i2t R@5 | i2t R@10 | t2i R@1 | t2i R@5 | t2i R@10 | mR | dup-aware t2i R@1/5/10 |"
    lines = [head, "|" + "---|" * 9]
    for name, i2t, t2i, mr in PUBLISHED:
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in (*i2t, *t2i, mr)) + " | |")
    for row in result["rows"]:
        cells = [_fmt(row[f"{d} {k}"]) for d in ("i2t", "t2i") for k in KEYS] + [_fmt(row["mR"])]
        dup = " / ".join(f"{row[f't2i_dup_aware {k}'][0]:.1f}" for k in KEYS)
        seeds = "" if "ensemble" in row["variant"] else f" ({row['seeds']} seeds)"
        lines.append(f"| rsir {row['variant']}{seeds} | " + " | ".join(cells) + f" | {dup} |")
    if "latency" in result:
        lat = result["latency"]
        lines.append(
            f"\ntext search at the service ({lat['index_items']} scenes, {lat['queries']} queries): took_ms median "
            f"{lat['took_ms_median']:.1f} (p95 {lat['took_ms_p95']:.1f}), "
            f"request median {lat['request_ms_median']:.1f} ms, CPU time per request median "
            f"{lat['request_cpu_ms_median']:.1f} ms (p95 {lat['request_cpu_ms_p95']:.1f})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    import torch

    torch.set_num_threads(args.threads)
    result = benchmark(args)
    print(json.dumps(result) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
