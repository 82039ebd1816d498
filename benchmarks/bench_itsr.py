"""Benchmark of text-ITSR fusions on the semi-synthetic set made from UC Merced.

One command: makes the set if missing (rsir itsr synth), caches the frozen features once, trains every
fusion (GFF operators, TFF, after-only) for each seed, evaluates on the FULL test gallery and prints a
table (mean +- std over seeds) plus the targets. Re-running reuses finished runs (checkpoints resume).

    .venv/bin/python benchmarks/bench_itsr.py                # 8 fusions x 3 seeds
    .venv/bin/python benchmarks/bench_itsr.py --json --fusions tff gff-concat+diff --seeds 0
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
FUSIONS = ["after", "gff-concat", "gff-diff", "gff-absdiff", "gff-sum", "gff-product", "gff-concat+diff", "tff"]
KEYS = ("r@1", "r@5", "r@10")
# Ablations of the default TFF, run with --ablations: paper-style TFF (diff stream, mean pooling, no
# global skip, no cell readout) and the default without its cell readout.
VARIANTS = {
    "tff-plain": {"pool": "mean", "global_skip": False, "cell_readout": 0},
    "tff-noreadout": {"cell_readout": 0},
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
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--fusions", nargs="+", default=FUSIONS)
    p.add_argument("--ablations", action="store_true", help=f"also run {', '.join(VARIANTS)}")
    p.add_argument("--finetune", type=int, default=0, help="fine-tune the image encoder's last N blocks too")
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
    data = args.work / f"synth-{args.archive.name}-p{args.pairs}-s{args.data_seed}"
    if not (data / "synth_manifest.json").is_file():
        if not args.archive.is_dir():
            sys.exit(f"scene archive not found at {args.archive} (set RSIR_SHARED_DATA or --archive)")
        make_synthetic(args.archive, data, pairs=args.pairs, seed=args.data_seed, progress=not args.json)
    return data


def _one_run(data: Path, fusion: str, seed: int, args: argparse.Namespace) -> dict:
    from rsir.itsr.pipeline import evaluate_checkpoint, train
    from rsir.models.fusion import TFFConfig
    from rsir.train.itsr import ITSRTrainConfig

    is_tff = fusion.startswith("tff")
    epochs = args.tff_epochs if is_tff and args.tff_epochs else args.epochs
    tuned = f"-ft{args.finetune}" if args.finetune else ""
    ckpt = args.work / "runs" / data.name / f"{fusion}{tuned}-s{seed}-e{epochs}"
    tff = TFFConfig(**VARIANTS.get(fusion, {})).to_dict()
    names = {k: v for k, v in (("encoder", args.encoder), ("text_encoder", args.text_encoder)) if v}
    fusion_name = "tff" if is_tff else fusion
    config = ITSRTrainConfig(
        fusion=fusion_name, epochs=epochs, seed=seed, tff=tff, finetune=args.finetune, device=args.device, **names
    )
    summary = train(data, ckpt, config, progress=False)
    test = evaluate_checkpoint(ckpt, data, "test", args.device, detail=True, progress=False)
    return {
        "fusion": fusion + tuned,
        "seed": seed,
        "epochs": epochs,
        "best_epoch": summary["best_epoch"],
        "train_seconds": summary["train_seconds"],
        "val_mR": summary["val"]["mR"],
        **test,
    }


def _mean_std(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def aggregate(runs: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for fusion in dict.fromkeys(r["fusion"] for r in runs):
        rs = [r for r in runs if r["fusion"] == fusion]
        row = {"seeds": [r["seed"] for r in rs]}
        for d in ("t2i", "i2t"):
            for k in KEYS:
                row[f"{d} {k}"] = _mean_std([r[d][k] for r in rs])
        row["mR"] = _mean_std([r["mR"] for r in rs])
        for subset in ("changed", "unchanged"):  # queries about changed pairs (region-naming captions) / the rest
            if all(subset in r for r in rs):
                row[f"{subset} mR"] = _mean_std([r[subset]["mR"] for r in rs])
                row[f"{subset} t2i r@10"] = _mean_std([r[subset]["t2i"]["r@10"] for r in rs])
        row["train_s"] = _mean_std([r["train_seconds"] for r in rs])
        out[fusion] = row
    return out


def targets(agg: dict[str, dict]) -> dict:
    agg = {f: row for f, row in agg.items() if f not in VARIANTS}  # targets are about the named fusions
    best = max(agg, key=lambda f: agg[f]["mR"][0])
    gff = [f for f in agg if f.startswith("gff-")]
    out = {"best": best, "best_t2i_r@10": agg[best]["t2i r@10"][0], "best_mR": agg[best]["mR"][0]}
    out["t2i_r@10>=65"] = out["best_t2i_r@10"] >= 65
    out["mR>=50"] = out["best_mR"] >= 50
    if "after" in agg:
        out["best_minus_after_t2i_r@10"] = out["best_t2i_r@10"] - agg["after"]["t2i r@10"][0]
        out["beats_after_by_10"] = out["best_minus_after_t2i_r@10"] >= 10
    if "tff" in agg and gff:
        best_gff = max(gff, key=lambda f: agg[f]["mR"][0])
        out["best_gff"] = best_gff
        out["tff_minus_best_gff_mR"] = agg["tff"]["mR"][0] - agg[best_gff]["mR"][0]
        out["tff_beats_gff_by_2"] = out["tff_minus_best_gff_mR"] >= 2
        if "changed mR" in agg["tff"]:
            best_region = max(gff, key=lambda f: agg[f]["changed mR"][0])
            out["best_gff_on_region_captions"] = best_region
            out["tff_minus_best_gff_mR_region"] = agg["tff"]["changed mR"][0] - agg[best_region]["changed mR"][0]
            out["tff_beats_gff_by_2_on_region_captions"] = out["tff_minus_best_gff_mR_region"] >= 2
    return out


def _cell(stat: tuple[float, float]) -> str:
    return f"{stat[0]:.1f} ± {stat[1]:.1f}"


def table(agg: dict[str, dict]) -> str:
    """Markdown table, mean ± std over seeds; chg/noc = queries about changed / unchanged pairs."""
    cols = [f"{d} R@{k}" for d in ("t2i", "i2t") for k in (1, 5, 10)] + ["mR", "chg mR", "chg t2i R@10"]
    cols += ["noc t2i R@10", "train s"]
    keys = [f"{d} r@{k}" for d in ("t2i", "i2t") for k in (1, 5, 10)] + ["mR", "changed mR", "changed t2i r@10"]
    keys += ["unchanged t2i r@10"]
    lines = ["| fusion | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for fusion, row in agg.items():
        cells = [_cell(row[k]) if k in row else "-" for k in keys] + [f"{row['train_s'][0]:.0f}"]
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
    synth = data / "synth_manifest.json"
    manifest = json.loads(synth.read_text()) if synth.is_file() else {"pairs": None, "duplicate_rate": None}
    runs, t0 = [], time.perf_counter()
    for fusion in args.fusions + (list(VARIANTS) if args.ablations else []):
        for seed in args.seeds:
            run = _one_run(data, fusion, seed, args)
            runs.append(run)
            if not args.json:
                print(
                    f"{run['fusion']:<16} seed {seed}: mR {run['mR']:.2f}  t2i R@10 {run['t2i']['r@10']:.2f}  "
                    f"({run['train_seconds']:.0f}s train)",
                    flush=True,
                )
    agg = aggregate(runs)
    result = {
        "dataset": str(data),
        "gallery_size": runs[0]["gallery_size"],
        "pairs": manifest["pairs"],
        "duplicate_rate": manifest["duplicate_rate"],
        "seeds": args.seeds,
        "epochs": args.epochs,
        "aggregate": agg,
        "targets": targets(agg),
        "runs": runs,
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    tag = f"-ft{args.finetune}" if args.finetune else ""
    (args.work / f"results-{data.name}{tag}.json").write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result))
        return 0
    dup = manifest["duplicate_rate"]
    about = f"semi-synthetic set, caption duplicate rate {100 * dup:.2f}%" if dup is not None else "dataset"
    print(f"\n{about} {data}: test gallery {result['gallery_size']} pairs, seeds {args.seeds}")
    print("chg / noc: queries about changed pairs (their captions name the region) / unchanged pairs\n")
    print(table(agg))
    print("\ntargets:", json.dumps(result["targets"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
