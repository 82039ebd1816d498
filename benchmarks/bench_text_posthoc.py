"""Test-time levers of text <-> scene retrieval on UCM-Captions, post hoc on trained checkpoints (no training).

Re-scores the checkpoints of one `bench_text.py` variant (default: the default's, ``ft1-aug-10ep-x-q``) on
the val and test splits under each lever of docs/benchmarks.md's fourth pass and prints mean mR over the
seeds (and each seed's):

- the training-memory bridge (rsir.text.bridge, the measured settings), its text->image and image->text
  parts, and with querybank normalisation or gallery expansion taken out;
- image->text querybank normalisation over the training images (inverted softmax, beta 5-40);
- 8 turns/flips of the pixels, the mean embedding (each view through the frozen trunk and the tuned tail);
- the encoder at the native 256 px instead of the 224 px the pipeline resizes to.

    env RSIR_SHARED_DATA=/work/shared/data .venv/bin/python benchmarks/bench_text_posthoc.py [--splits val]

Pick on val; test is printed for the record. 8 views cost 8 encoder passes over val and test (~20 min on
2 busy cores).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BETAS = (5.0, 10.0, 20.0, 40.0)


def _args(argv: list[str] | None) -> argparse.Namespace:
    shared = Path(os.environ.get("RSIR_SHARED_DATA", REPO / ".." / "shared" / "data")).resolve()
    cache = Path(os.environ.get("RSIR_CACHE", Path.home() / ".cache" / "rsir"))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--captions", type=Path, default=shared / "ucm-captions" / "dataset.json")
    p.add_argument("--images", type=Path, default=shared / "ucmerced")
    p.add_argument("--work", type=Path, default=cache / "bench-text", help="bench_text.py's checkpoints")
    p.add_argument("--variant", default="ft1-aug-10ep-x-q")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--splits", nargs="+", default=["val", "test"], choices=["val", "test"])
    p.add_argument("--no-views", action="store_true", help="skip the pixel views (8 turns, 256 px): minutes each")
    p.add_argument("--json", action="store_true")
    return p.parse_args(argv)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class _Views:
    """A checkpoint's image embeddings of a split: as trained (224 px), under 8 pixel turns/flips, at 256 px."""

    def __init__(self, ckpt: Path, archive, captions: Path, images: Path) -> None:
        import torch

        from rsir.text.pipeline import open_model

        self.model, self.manifest, self.enc = open_model(ckpt)
        self.model.eval()
        self.archive, self.captions, self.images, self.torch = archive, captions, images, torch
        self.n_tail = int(self.manifest.get("finetuned_blocks") or 0)

    def _globals(self, x):
        from rsir.text.features import encode_scenes

        if not self.n_tail:
            return encode_scenes(self.enc.image, x)
        trunk, tail = self.enc.image.split(self.n_tail)
        return tail.eval()(trunk.eval()(x)).mean(1)

    def _embed(self, glob) -> np.ndarray:
        with self.torch.inference_mode():
            g = glob.float()[:, None].expand(-1, 2, -1)
            return self.model.encode_pairs(g, None).float().numpy()

    def pixels(self, split: str, turns: int = 1, size: int | None = None) -> np.ndarray:
        """[N, d]: the mean over ``turns`` dihedral views of each image's embedding, at ``size`` px."""
        from rsir.itsr.pair_images import pair_batches
        from rsir.text.tail import dihedral

        prep = self.enc.image.config.preprocess
        prep = replace(prep, size=size) if size else prep
        out = []
        for x in pair_batches(self.archive.split(split).pairs, prep, 32, 0, split, False, single_date=True):
            with self.torch.inference_mode():
                views = [self._embed(self._globals(dihedral(x, self.torch.full((len(x),), t)))) for t in range(turns)]
            out.append(_unit(np.mean(views, 0)))
        return np.concatenate(out)


def _split(views: _Views, split: str, pixel_views: bool):
    """(text embeddings, captions' images, captions, {view name: image embeddings}) of a split."""
    from rsir.text.pipeline import embed, split_features_for

    feats = split_features_for(views.enc, views.captions, views.images, split, None, False)
    image_emb, text_emb = embed(views.model, feats)
    imgs = {"as trained": image_emb}
    if pixel_views:
        imgs["8 pixel turns/flips"] = views.pixels(split, turns=8)
        imgs["256 px"] = views.pixels(split, size=256)
    return text_emb, feats.caption_pair, feats.captions, imgs


def _memory(views: _Views):
    from rsir.text.bridge import Memory, carries_of
    from rsir.text.pipeline import embed, split_features_for
    from rsir.text.querybank import distinct_rows

    feats = split_features_for(views.enc, views.captions, views.images, "train", None, False)
    image_emb, text_emb = embed(views.model, feats)
    rows = distinct_rows(feats.captions)
    return Memory(text_emb[rows], image_emb, carries_of(feats.captions, feats.caption_pair, rows))


def levers(text_emb, caption_image, captions, imgs: dict, memory, manifest) -> dict:
    """{lever: scores} of one split of one checkpoint."""
    from rsir.text.bridge import Bridge, GalleryBridge
    from rsir.text.expansion import expand_gallery, expansion_of
    from rsir.text.pipeline import score_matrices, similarity_scores
    from rsir.text.querybank import gallery_offsets, querybank_of

    beta = querybank_of(manifest).beta

    def run(img, bridge=None, qb=True, expand=True, i2t_beta=None):
        gallery = expand_gallery(img, expansion_of(manifest)) if expand else img
        offsets = gallery_offsets(memory.text, gallery, beta) if qb and beta else None
        over = GalleryBridge(bridge, memory, img) if bridge else None
        i2t, t2i = score_matrices(img, text_emb, gallery, offsets, over)
        if i2t_beta:  # image -> text: each caption less its inverted-softmax offset over the training images
            i2t = i2t - gallery_offsets(memory.images, text_emb, i2t_beta)[:, None]
        return similarity_scores(i2t, caption_image, captions, t2i)

    base = imgs["as trained"]
    out = {
        "the checkpoint, as is": run(base),
        "bridge, text->image part only": run(base, Bridge(i2t_weight=0.0)),
        "bridge, image->text part only": run(base, Bridge(weight=0.0)),
        "bridge, both (-b)": run(base, Bridge()),
        "bridge, both, without querybank normalisation": run(base, Bridge(), qb=False),
        "bridge, both, without gallery expansion": run(base, Bridge(), expand=False),
    }
    for b in BETAS:
        out[f"image->text querybank over the training images, beta {b:g}"] = run(base, i2t_beta=b)
    for name, img in imgs.items():
        if name != "as trained":
            out[name] = run(img)
            out[f"{name} + bridge"] = run(img, Bridge())
    return out


def benchmark(args) -> dict:
    import torch

    from rsir.data.captions import open_scene_captions

    torch.set_num_threads(1)
    archive = open_scene_captions(args.captions, args.images)
    per: dict[str, dict[str, list[float]]] = {s: {} for s in args.splits}
    for seed in args.seeds:
        views = _Views(args.work / args.variant / f"seed{seed}", archive, args.captions, args.images)
        memory = _memory(views)
        for split in args.splits:
            text_emb, caption_image, captions, imgs = _split(views, split, not args.no_views)
            for name, s in levers(text_emb, caption_image, captions, imgs, memory, views.manifest).items():
                per[split].setdefault(name, []).append(s["mR"])
            print(f"seed {seed} {split} done", file=sys.stderr)
    return {"variant": args.variant, "seeds": args.seeds, "mR": per}


def table(result: dict) -> str:
    splits = list(result["mR"])
    lines = ["| lever | " + " | ".join(f"{s} mR (per seed)" for s in splits) + " |", "|---" * (1 + len(splits)) + "|"]
    for name in result["mR"][splits[0]]:
        cells = [
            f"{np.mean(v):.2f} ({' / '.join(f'{x:.2f}' for x in v)})" for v in (result["mR"][s][name] for s in splits)
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    result = benchmark(args)
    print(json.dumps(result) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
