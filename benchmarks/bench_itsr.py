"""Benchmark of text-ITSR fusions on the semi-synthetic set (v2 by default) made from UC Merced.

One command: makes the set if missing (rsir itsr synth), caches the frozen features once, trains every
fusion (GFF operators, TFF, the change gate, after-only and the before-only control) for each seed,
evaluates on the FULL test gallery, again with shuffled before images (the control a change-reading
fusion must lose), and prints a table (mean +- std over seeds) plus the targets. The headline is
text->pair on the queries about CHANGED pairs. Re-running reuses finished runs (checkpoints resume).

    .venv/bin/python benchmarks/bench_itsr.py                # the default fusions x 3 seeds
    .venv/bin/python benchmarks/bench_itsr.py --json --fusions tff gff-concat+diff --seeds 0
    .venv/bin/python benchmarks/bench_itsr.py --synth-version 1  # the easy v1 set
    .venv/bin/python benchmarks/bench_itsr.py --train-pairs 7000 --fusions gate-sharp8 --token-stage 5  # more pairs
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FUSIONS = ["after", "before", "gff-concat", "gff-absdiff", "gff-concat+diff", "tff", "gate"]
KEYS = ("r@1", "r@5", "r@10")
# Ablations of the default TFF, run with --ablations: paper-style TFF (diff stream, mean pooling, no
# global skip, no cell readout) and the default without its cell readout.
VARIANTS = {
    "tff-plain": {"pool": "mean", "global_skip": False, "cell_readout": 0},
    "tff-noreadout": {"cell_readout": 0},
    "tff-grid7": {"grid": None},  # all 7x7 tokens, per-cell readout of each
    "tff-grid7-noreadout": {"grid": None, "cell_readout": 0},
}


def _args(argv: list[str] | None) -> argparse.Namespace:
    shared = Path(os.environ.get("RSIR_SHARED_DATA", REPO / ".." / "shared" / "data")).resolve()
    cache = Path(os.environ.get("RSIR_CACHE", Path.home() / ".cache" / "rsir"))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archive", type=Path, default=shared / "ucmerced", help="scene archive for the synth set")
    p.add_argument("--work", type=Path, default=cache / "bench-itsr", help="data, caches and checkpoints")
    p.add_argument("--dataset", type=Path, default=None, help="a LEVIR-CC / Dubai-CC folder instead of the synth set")
    p.add_argument("--encoder", default=None, help="image encoder name (default: the registry's default)")
    p.add_argument("--text-encoder", default=None, help="text encoder name (default: offline MiniLM)")
    p.add_argument("--pairs", type=int, default=2500)
    p.add_argument("--synth-version", type=int, default=2, choices=(1, 2), help="synth set version")
    masks = shared / "change-samples"
    p.add_argument(
        "--masks", type=Path, default=masks if masks.is_dir() else None, help="real change masks (v2; '' for none)"
    )
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--fusions", nargs="+", default=FUSIONS)
    p.add_argument("--ablations", action="store_true", help=f"also run {', '.join(VARIANTS)}")
    p.add_argument("--finetune", type=int, default=0, help="fine-tune the image encoder's last N blocks too")
    p.add_argument(
        "--token-stage", type=int, default=0, help="tokens from the map after all but the last N blocks (5: 14x14)"
    )
    p.add_argument(
        "--sibling-batches", action="store_true", help="pairs sharing a before scene in one batch (hard negatives)"
    )
    p.add_argument("--changed-weight", type=float, default=1.0, help="loss weight of changed pairs (unchanged: 1)")
    p.add_argument(
        "--train-pairs",
        type=int,
        default=None,
        help="train on a bigger synth draw of N pairs from the same scenes (made if missing) and score on the "
        "--pairs set's test gallery (the same as --eval-dataset on that set)",
    )
    p.add_argument(
        "--eval-dataset",
        type=Path,
        default=None,
        help="score on this set's test split instead (e.g. the 2,500-pair set's gallery after training on a bigger "
        "draw); it must come from the same scenes, seed and scene split",
    )
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--tff-epochs", type=int, default=None, help="epochs for tff (default --epochs)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy box)")
    p.add_argument("--json", action="store_true", help="print the results as JSON only")
    return p.parse_args(argv)


def _dataset(args: argparse.Namespace) -> Path:
    from rsir.data.synth import make_synthetic

    if args.dataset:
        return args.dataset
    from rsir.data.synth_v2 import GENERATOR_VERSION

    # v2 sets are named by their generator too: a cached set of an older generator is not reused silently
    version = "" if args.synth_version == 1 else f"-v{args.synth_version}g{GENERATOR_VERSION}"
    data = args.work / f"synth-{args.archive.name}-p{args.pairs}-s{args.data_seed}{version}"
    if not (data / "synth_manifest.json").is_file():
        if not args.archive.is_dir():
            sys.exit(f"scene archive not found at {args.archive} (set RSIR_SHARED_DATA or --archive)")
        masks = args.masks if args.synth_version == 2 and args.masks and str(args.masks) else None
        make_synthetic(
            args.archive,
            data,
            pairs=args.pairs,
            seed=args.data_seed,
            progress=not args.json,
            version=args.synth_version,
            masks=masks,
        )
    return data


def _one_run(data: Path, fusion: str, seed: int, args: argparse.Namespace) -> dict:
    from rsir.itsr.pipeline import evaluate_checkpoint, train
    from rsir.models.fusion import TFFConfig
    from rsir.train.itsr import ITSRTrainConfig

    is_tff = fusion.startswith("tff")
    epochs = args.tff_epochs if is_tff and args.tff_epochs else args.epochs
    tuned = _tag(args)
    ckpt = args.work / "runs" / data.name / f"{fusion}{tuned}-s{seed}-e{epochs}"
    tff = TFFConfig(**VARIANTS.get(fusion, {})).to_dict()
    names = {k: v for k, v in (("encoder", args.encoder), ("text_encoder", args.text_encoder)) if v}
    fusion_name = "tff" if is_tff else fusion
    config = ITSRTrainConfig(
        fusion=fusion_name,
        epochs=epochs,
        seed=seed,
        tff=tff,
        finetune=args.finetune,
        token_stage=args.token_stage,
        sibling_batches=args.sibling_batches,
        changed_weight=args.changed_weight,
        device=args.device,
        **names,
    )
    summary = train(data, ckpt, config, progress=False)
    scored = args.eval_dataset or data
    test = evaluate_checkpoint(ckpt, scored, "test", args.device, detail=True, progress=False)
    if fusion != "after":  # the control: each pair's before image replaced by another pair's
        test["shuffled"] = evaluate_checkpoint(
            ckpt, scored, "test", args.device, detail=True, progress=False, shuffle_seed=seed
        )
    return {
        "fusion": fusion + tuned,
        "seed": seed,
        "epochs": epochs,
        "best_epoch": summary["best_epoch"],
        "train_seconds": summary["train_seconds"],
        "val_mR": summary["val"]["mR"],
        **test,
    }


def _tag(args: argparse.Namespace) -> str:
    """The run options that change a checkpoint, as a name suffix."""
    return (
        (f"-ft{args.finetune}" if args.finetune else "")
        + (f"-t{args.token_stage}" if args.token_stage else "")
        + ("-sib" if args.sibling_batches else "")
        + (f"-cw{args.changed_weight:g}" if args.changed_weight != 1.0 else "")
    )


def same_scene_split(train_manifest: dict, eval_manifest: dict) -> bool:
    """True when two synth sets drew their pairs from the same scenes and per-split scene lists (same archive,
    seed, near-duplicate removal and version), so one's test scenes never appear in the other's train split."""
    keys = ("source_archive", "seed", "synth_version", "scenes", "near_duplicates_removed", "dedup_bits")
    return all(train_manifest.get(k) == eval_manifest.get(k) for k in keys)


def _mean_std(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def _get(run: dict, path: str) -> float | None:
    """``run["changed"]["t2i"]["r@10"]`` for "changed.t2i.r@10"; None when a part is missing."""
    node = run
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


# aggregate key -> path in a run's scores
STATS = {
    **{f"t2i {k}": f"t2i.{k}" for k in KEYS},
    **{f"i2t {k}": f"i2t.{k}" for k in KEYS},
    "mR": "mR",
    **{f"changed t2i {k}": f"changed.t2i.{k}" for k in KEYS},
    "changed i2t r@10": "changed.i2t.r@10",
    "changed mR": "changed.mR",
    "unchanged t2i r@10": "unchanged.t2i.r@10",
    "unchanged t2i_dup r@10": "unchanged.t2i_dup.r@10",
    "t2i_dup r@10": "t2i_dup.r@10",
    "shuffled changed t2i r@10": "shuffled.changed.t2i.r@10",
    "shuffled changed mR": "shuffled.changed.mR",
    "train_s": "train_seconds",
}


def aggregate(runs: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for fusion in dict.fromkeys(r["fusion"] for r in runs):
        rs = [r for r in runs if r["fusion"] == fusion]
        row: dict = {"seeds": [r["seed"] for r in rs]}
        for key, path in STATS.items():
            values = [_get(r, path) for r in rs]
            if all(v is not None for v in values):
                row[key] = _mean_std(values)
        out[fusion] = row
    return out


def _m(row: dict, key: str) -> float:
    return row[key][0] if key in row else float("nan")


def targets(agg: dict[str, dict], gallery: int) -> dict:
    """The issue's targets on CHANGED-pair queries (chance R@10 = 10 / gallery)."""
    named = {f: row for f, row in agg.items() if f not in ("after", "before")}
    if not named:
        return {}
    head = "changed t2i r@10" if all("changed t2i r@10" in r for r in agg.values()) else "t2i r@10"
    best = max(named, key=lambda f: _m(named[f], head))
    chance = 100 * 10 / gallery
    out = {"headline": head, "chance_r@10": round(chance, 2), "best": best, "best_r@10": _m(agg[best], head)}
    out["best_over_chance"] = round(out["best_r@10"] / chance, 2)
    out["best>=10x_chance"] = out["best_over_chance"] >= 10
    singles = [_m(agg[f], head) for f in ("after", "before") if f in agg]
    if singles:
        out["best_minus_single_date"] = round(out["best_r@10"] - max(singles), 2)
        out["beats_single_date_by_15"] = out["best_minus_single_date"] >= 15
    if "shuffled changed t2i r@10" in agg[best]:
        out["shuffle_drop"] = round(out["best_r@10"] - _m(agg[best], "shuffled changed t2i r@10"), 2)
        out["shuffle_drop>=15"] = out["shuffle_drop"] >= 15
    gff = [f for f in agg if f.startswith("gff-")]
    mr = "changed mR" if head.startswith("changed") else "mR"
    for tff in (f for f in agg if f.startswith(("tff", "gate"))):
        if gff:
            best_gff = max(gff, key=lambda f: _m(agg[f], mr))
            out[f"{tff}_minus_{best_gff}_{mr.replace(' ', '_')}"] = round(_m(agg[tff], mr) - _m(agg[best_gff], mr), 2)
    return out


def _cell(stat: tuple[float, float] | None) -> str:
    return "-" if stat is None else f"{stat[0]:.1f} ± {stat[1]:.1f}"


COLUMNS = [
    ("chg t2i R@1", "changed t2i r@1"),
    ("chg t2i R@5", "changed t2i r@5"),
    ("chg t2i R@10", "changed t2i r@10"),
    ("chg mR", "changed mR"),
    ("chg t2i R@10, shuffled before", "shuffled changed t2i r@10"),
    ("noc t2i R@10", "unchanged t2i r@10"),
    ("noc t2i R@10 dup-aware", "unchanged t2i_dup r@10"),
    ("all t2i R@10", "t2i r@10"),
    ("all mR", "mR"),
]


def table(agg: dict[str, dict]) -> str:
    """Markdown table, mean ± std over seeds; chg/noc = queries about changed / unchanged pairs."""
    lines = ["| fusion | " + " | ".join(c for c, _ in COLUMNS) + " | train s |", "|---" * (len(COLUMNS) + 2) + "|"]
    for fusion, row in agg.items():
        cells = [_cell(row.get(k)) for _, k in COLUMNS] + [f"{_m(row, 'train_s'):.0f}"]
        lines.append(f"| {fusion} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    from rsir.models.device import DeviceUnavailable, check_device

    try:
        check_device(args.device)  # the same check as `rsir itsr --device`, before any feature is computed
    except DeviceUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    data = _dataset(args)
    if args.train_pairs:
        if args.dataset or args.eval_dataset:
            print(
                "error: --train-pairs draws synth sets; it does not combine with --dataset/--eval-dataset",
                file=sys.stderr,
            )
            return 2
        args.eval_dataset = data  # the --pairs set's gallery is scored; training uses the bigger draw
        data = _dataset(argparse.Namespace(**{**vars(args), "pairs": args.train_pairs}))
    synth = data / "synth_manifest.json"
    manifest = json.loads(synth.read_text()) if synth.is_file() else {"pairs": None, "duplicate_rate": None}
    if args.eval_dataset:
        other = args.eval_dataset / "synth_manifest.json"
        if not other.is_file() or not synth.is_file() or not same_scene_split(manifest, json.loads(other.read_text())):
            print(f"error: {args.eval_dataset} is not a synth set from the same scene split as {data}", file=sys.stderr)
            return 2
    runs, t0 = [], time.perf_counter()
    for fusion in args.fusions + (list(VARIANTS) if args.ablations else []):
        for seed in args.seeds:
            run = _one_run(data, fusion, seed, args)
            runs.append(run)
            if not args.json:
                chg = _get(run, "changed.t2i.r@10")
                shuf = _get(run, "shuffled.changed.t2i.r@10")
                print(
                    f"{run['fusion']:<16} seed {seed}: changed t2i R@10 {chg if chg is None else round(chg, 2)} "
                    f"(shuffled before {shuf if shuf is None else round(shuf, 2)})  mR {run['mR']:.2f}  "
                    f"({run['train_seconds']:.0f}s train)",
                    flush=True,
                )
    agg = aggregate(runs)
    result = {
        "dataset": str(data),
        "eval_dataset": str(args.eval_dataset or data),
        "gallery_size": runs[0]["gallery_size"],
        "pairs": manifest["pairs"],
        "duplicate_rate": manifest["duplicate_rate"],
        "seeds": args.seeds,
        "epochs": args.epochs,
        "aggregate": agg,
        "targets": targets(agg, runs[0]["gallery_size"]),
        "runs": runs,
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    tag = _tag(args) + (f"-on-{args.eval_dataset.name}" if args.eval_dataset else "")
    tag += f"-seeds{''.join(map(str, args.seeds))}" + ("" if args.fusions == FUSIONS else "-" + "_".join(args.fusions))
    (args.work / f"results-{data.name}{tag}.json").write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result))
        return 0
    dup = manifest["duplicate_rate"]
    about = f"semi-synthetic set, caption duplicate rate {100 * dup:.2f}%" if dup is not None else "dataset"
    print(f"\n{about} {data}: test gallery {result['gallery_size']} pairs, seeds {args.seeds}")
    print("chg / noc: queries about changed / unchanged pairs (full gallery); headline: chg t2i R@10\n")
    print(table(agg))
    print("\ntargets:", json.dumps(result["targets"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
