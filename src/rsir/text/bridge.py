"""Training-memory bridge: nearest-neighbour retrieval through the training set (cf. Devlin et al. 2015).

Caption datasets of scenes repeat their sentences (UCM-Captions' captions are class templates: the same
sentence recurs across train and test), so the training set is a memory that links words to scenes:

- text -> scene: ``bridge(q, g) = sum_j P(j | g) A(q, j)`` where ``A(q, .)`` is a softmax (temperature
  ``temperature``) over the training images of ``max over j's captions of cos(q, c)`` and ``P(. | g)`` a
  softmax (temperature ``tau``) over the gallery scene's ``k`` nearest training images (cosine in the shared
  space): "the training scenes that look like g are described like q";
- scene -> text: ``bridge(g, t) = sum_j P(j | g) max(0, max over j's captions of cos(c, t))``: "the
  training scenes that look like g carry captions like t".

Scores become ``score + weight * bridge`` (text queries, after the querybank offsets) and
``score + i2t_weight * bridge`` (image queries). Only training data is used: the memory (the model's
embeddings of the distinct training captions, of the training images, and which image carries which
caption) is saved in the checkpoint (``bridge.npz``) and the setting in its manifest (``bridge``), so
training's validation, `rsir text eval`, `rsir search --text` and the service score alike. The gallery
side, each scene's neighbours and weights ``[N, k]``, is computed once when a split or an index is loaded;
a text query then costs one [B, d] product over the training captions and an [N, k] gather.
Checkpoints without it (older ones) are not bridged.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

MEMORY_FILE = "bridge.npz"  # text [B, d], images [T, d] (float32), carries [P, 2] int64: (caption row, image row)


@dataclass(frozen=True)
class Bridge:
    k: int = 10  # training neighbours of each gallery scene (0: off)
    tau: float = 0.02  # temperature of a scene's softmax over its training neighbours
    temperature: float = 0.05  # temperature of a text query's softmax over the training images
    weight: float = 8.0  # of the bridge in text -> scene scores
    i2t_weight: float = 0.2  # of the bridge in scene -> text scores

    def __post_init__(self) -> None:
        if self.k < 0 or min(self.weight, self.i2t_weight) < 0 or min(self.tau, self.temperature) <= 0:
            raise ValueError(f"the training-memory bridge needs k >= 0, weights >= 0, temperatures > 0: {self}")

    @property
    def active(self) -> bool:
        return self.k > 0 and (self.weight > 0 or self.i2t_weight > 0)

    def to_dict(self) -> dict:
        return asdict(self)


OFF = Bridge(k=0, weight=0.0, i2t_weight=0.0)


def bridge_of(manifest: dict) -> Bridge:
    """The checkpoint's bridge (OFF for checkpoints saved without one)."""
    saved = manifest.get("bridge")
    return Bridge(**saved) if saved else OFF


@dataclass(frozen=True)
class Memory:
    """The training set in the shared space: distinct captions, images, and which image carries which caption."""

    text: np.ndarray  # float32 [B, d], L2-normalised
    images: np.ndarray  # float32 [T, d], L2-normalised
    carries: np.ndarray  # int64 [P, 2]: (caption row, image row), each pair once

    def save(self, out: Path) -> None:
        tmp = Path(out) / f".{MEMORY_FILE}.tmp{os.getpid()}.npz"
        np.savez(tmp, text=self.text, images=self.images, carries=self.carries)
        os.replace(tmp, Path(out) / MEMORY_FILE)

    @classmethod
    def load(cls, ckpt: str | Path) -> Memory:
        path = Path(ckpt) / MEMORY_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{ckpt} uses the training-memory bridge but has no {MEMORY_FILE}")
        with np.load(path) as z:
            return cls(z["text"].astype(np.float32), z["images"].astype(np.float32), z["carries"].astype(np.int64))

    def best_caption(self, text_emb: np.ndarray) -> np.ndarray:
        """float32 [M, T]: for each text, its best cosine with any caption of each training image."""
        cos = np.asarray(text_emb, dtype=np.float32) @ self.text.T  # [M, B]
        out = np.full((len(self.images), len(cos)), -np.inf, dtype=np.float32)  # [T, M]
        np.maximum.at(out, self.carries[:, 1], cos.T[self.carries[:, 0]])
        return out.T


def carries_of(captions: list[str], caption_image: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """int64 [P, 2]: (row in ``rows``, image) for every image that carries each bank caption (``rows``: the first
    row of each distinct caption, :func:`rsir.text.querybank.distinct_rows`)."""
    keys = [c.strip().lower() for c in captions]
    bank_row = {keys[r]: i for i, r in enumerate(rows)}
    pairs = {(bank_row[k], int(img)) for k, img in zip(keys, caption_image, strict=True)}
    return np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)


def _softmax(x: np.ndarray, temperature: float) -> np.ndarray:
    z = (x - x.max(axis=-1, keepdims=True)) / temperature
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class GalleryBridge:
    """The bridge over one gallery: each scene's training neighbours (once), then scores per query."""

    def __init__(self, bridge: Bridge, memory: Memory, image_emb: np.ndarray, chunk: int = 4096) -> None:
        self.bridge, self.memory = bridge, memory
        k = min(bridge.k, len(memory.images))
        rows, weights = [], []
        for s in range(0, len(image_emb), chunk):  # [chunk, T] at a time: index-sized galleries fit in memory
            sim = np.asarray(image_emb[s : s + chunk], dtype=np.float32) @ memory.images.T
            top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
            rows.append(top)
            weights.append(_softmax(np.take_along_axis(sim, top, axis=1), bridge.tau))
        self.neighbours = np.concatenate(rows) if rows else np.zeros((0, k), np.int64)  # [N, k]
        self.weights = np.concatenate(weights).astype(np.float32) if weights else np.zeros((0, k), np.float32)

    def t2i(self, text_emb: np.ndarray) -> np.ndarray:
        """float32 [M, N]: the weighted text -> scene bridge (``weight`` x bridge) of each text over the gallery."""
        if self.bridge.weight == 0:
            return np.zeros((len(text_emb), len(self.neighbours)), np.float32)
        a = _softmax(self.memory.best_caption(text_emb), self.bridge.temperature)  # [M, T]
        return self._through_neighbours(a, self.bridge.weight)

    def i2t(self, text_emb: np.ndarray) -> np.ndarray:
        """float32 [M, N]: the weighted scene -> text bridge (``i2t_weight`` x bridge) of each gallery scene
        (as a query) with each text, laid out as the caption x image similarity."""
        if self.bridge.i2t_weight == 0:
            return np.zeros((len(text_emb), len(self.neighbours)), np.float32)
        w = np.maximum(self.memory.best_caption(text_emb), 0.0)  # [M, T]
        return self._through_neighbours(w, self.bridge.i2t_weight)

    def _through_neighbours(self, per_training_image: np.ndarray, weight: float) -> np.ndarray:
        """float32 [M, N]: ``weight`` x each scene's neighbour-weighted mean of a [M, T] training-image score."""
        out = np.einsum("mnk,nk->mn", per_training_image[:, self.neighbours], self.weights)
        return (weight * out).astype(np.float32)


def gallery_bridge_for(ckpt: str | Path, manifest: dict, image_emb: np.ndarray) -> GalleryBridge | None:
    """The checkpoint's bridge over ``image_emb`` (the gallery's shared-space embeddings, not expanded);
    None when its bridge is off."""
    bridge = bridge_of(manifest)
    return GalleryBridge(bridge, Memory.load(ckpt), image_emb) if bridge.active else None
