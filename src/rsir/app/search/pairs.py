"""The text-ITSR side of the search service: a checkpoint plus a gallery of before/after pairs.

An adapter over ``rsir.itsr`` (checkpoint loading, cached features, ``embed_split``): the gallery is one
split of a change-caption dataset (by default the dataset the checkpoint was trained on), embedded once
at start-up; text queries and uploaded pairs are embedded into the same space.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np


def checkpoint_dataset(ckpt: str | Path) -> Path | None:
    """The dataset root a checkpoint's manifest records, if any."""
    manifest = Path(ckpt) / "manifest.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"{ckpt} is not an rsir itsr checkpoint (no manifest.json)")
    root = json.loads(manifest.read_text()).get("dataset", {}).get("root")
    return Path(root) if root else None


class PairGallery:
    def __init__(
        self,
        ckpt: str | Path,
        dataset: str | Path | None = None,
        split: str = "test",
        device: str = "cpu",
        cache_dir: Path | None = None,
    ) -> None:
        from rsir.itsr.evaluate import embed_split
        from rsir.itsr.pipeline import open_for_checkpoint

        dataset = dataset or checkpoint_dataset(ckpt)
        if dataset is None:
            raise ValueError(f"checkpoint {ckpt} names no dataset: give the pair gallery with --itsr-data")
        model, _, enc, feats = open_for_checkpoint(ckpt, dataset, split, device, cache_dir, progress=False)
        self.model, self.enc, self.device = model, enc, device
        self.root = Path(dataset).resolve()
        self.pairs = feats.pairs
        self.pair_emb, self.text_emb = embed_split(model, feats, device)
        self.captions = feats.captions
        self.caption_pair = np.asarray(feats.caption_pair)
        self._row = {p.id: i for i, p in enumerate(self.pairs)}
        self.changed = np.array([p.changed for p in self.pairs], dtype=bool)
        self._lock = threading.Lock()  # one encoder forward at a time: torch already uses every core

    def __len__(self) -> int:
        return len(self.pairs)

    def row_of(self, pair_id: str) -> int:
        if pair_id not in self._row:
            raise KeyError(f"unknown pair id {pair_id!r}")
        return self._row[pair_id]

    def text_vector(self, text: str) -> np.ndarray:
        import torch

        with self._lock, torch.inference_mode():
            t = self.enc.text.encode([text]).to(self.device)
            return self.model.encode_text(t).float().cpu().numpy()[0]

    def pair_vector(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """Decoded images (float [C, H, W]) -> the pair's embedding, as gallery pairs are embedded."""
        import torch

        from rsir.itsr.features import encode_pair_batch
        from rsir.models.preprocess import prepare

        prep = self.enc.image.config.preprocess
        with self._lock, torch.inference_mode():
            x = torch.stack([prepare(before, prep), prepare(after, prep)])[None].to(self.device)
            glob, tokens = encode_pair_batch(self.enc.image, x, self.model.config.token_stage)
            return self.model.encode_pairs(glob.float(), tokens.float()).float().cpu().numpy()[0]

    def ranked(
        self, query: np.ndarray, offset: int, k: int, changed: bool | None = None, exclude_row: int | None = None
    ) -> tuple[int, list[tuple[int, float]]]:
        """(pairs passing the filter, [(row, score)] of ranks offset+1 .. offset+k)."""
        scores = self.pair_emb @ query
        keep = np.ones(len(self), dtype=bool)
        if changed is not None:
            keep &= self.changed == changed
        if exclude_row is not None:
            keep[exclude_row] = False
        rows = np.flatnonzero(keep)
        order = rows[np.argsort(-scores[rows], kind="stable")][offset : offset + k]
        return len(rows), [(int(r), float(scores[r])) for r in order]

    def top_captions(self, query: np.ndarray, k: int = 5) -> list[tuple[str, float, str]]:
        """Distinct gallery captions closest to a pair embedding: (caption, score, pair id)."""
        scores = self.text_emb @ query
        out, seen = [], set()
        for i in np.argsort(-scores, kind="stable"):
            key = self.captions[i].strip().lower()
            if key not in seen:
                seen.add(key)
                out.append((self.captions[i], float(scores[i]), self.pairs[self.caption_pair[i]].id))
                if len(out) == k:
                    break
        return out
