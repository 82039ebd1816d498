"""What a trained text-ITSR model says about REAL changes: its top captions for the real LEVIR-CD / DSIFN
pairs in ../shared/data/change-samples, drawn as a grid (before | after | change mask | top captions).

There are no captions for these pairs, so there is no score: the picture shows a reader what the model
retrieves (from the synth set's test captions) for real changes. The pairs are academic-licence data:
the picture is for local docs, not for shipping with the package.

    .venv/bin/python benchmarks/itsr_real_pairs.py CKPT DATASET --out docs/img/itsr-real-pairs.png
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def real_pairs(root: Path) -> list[tuple[str, Path, Path, Path]]:
    """(name, before, after, mask) of every pair under ``root/<set>/{A,B,label}``."""
    out = []
    for folder in sorted(p for p in root.iterdir() if (p / "A").is_dir()):
        for a in sorted((folder / "A").glob("*.png")):
            out.append((f"{folder.name}/{a.stem}", a, folder / "B" / a.name, folder / "label" / a.name))
    return out


def main(argv: list[str] | None = None) -> int:
    from PIL import Image, ImageDraw

    from rsir.itsr.pipeline import open_for_checkpoint, search_pair

    shared = Path(os.environ.get("RSIR_SHARED_DATA", REPO / ".." / "shared" / "data")).resolve()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ckpt", type=Path)
    p.add_argument("dataset", type=Path, help="the synth set whose test captions are searched")
    p.add_argument("--pairs", type=Path, default=shared / "change-samples")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "itsr-real-pairs.png")
    p.add_argument("-k", type=int, default=3)
    p.add_argument("--thumb", type=int, default=96)
    args = p.parse_args(argv)
    model, _, enc, feats = open_for_checkpoint(args.ckpt, args.dataset, "test", progress=False)
    pairs = real_pairs(args.pairs)
    t, pad, text_w = args.thumb, 4, 560
    canvas = Image.new("RGB", (3 * (t + pad) + text_w, len(pairs) * (t + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for row, (name, before, after, mask) in enumerate(pairs):
        y = pad + row * (t + pad)
        for col, path in enumerate((before, after, mask)):
            with Image.open(path) as im:
                canvas.paste(im.convert("RGB").resize((t, t)), (pad + col * (t + pad), y))
        found = search_pair(model, enc, feats, before, after, args.k)
        lines = [name] + [f"{r['rank']}. {r['caption']}" for r in found]
        print(" | ".join(lines), flush=True)
        for i, line in enumerate(lines):
            draw.text((3 * (t + pad) + pad, y + 4 + 15 * i), line[:90], fill="black" if i else "grey")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(args.out)
    print(f"{len(pairs)} real pairs -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
