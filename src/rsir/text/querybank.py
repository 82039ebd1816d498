"""Querybank normalisation of text -> scene scores (QB-Norm with the inverted softmax, Bogolin et al. 2022).

Some scenes sit close to many sentences ("hubs") and crowd every text query's top ranks. The inverted
softmax divides ``exp(beta * s(q, g))`` by ``sum over a bank of queries b of exp(beta * s(b, g))``: a scene
that every query likes is worth less. With the bank fixed, that is the same ranking as the score

    s(q, g) - offset(g),   offset(g) = logsumexp_b(beta * s(b, g)) / beta

so a gallery costs one offset per item, computed once when a split or an index is loaded, and a query
costs nothing more. The bank is the model's embeddings of its distinct TRAINING captions (never test data), saved
in the checkpoint (``querybank.npy``); the setting lives in the manifest (``querybank``) so training's
validation, `rsir text eval`, `rsir search --text` and the service apply the same one. Text queries only:
image -> text keeps plain cosine scores. Checkpoints without it (older ones) are not normalised.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

BANK_FILE = "querybank.npy"  # float32 [B, d]: the training captions in the shared space


@dataclass(frozen=True)
class QueryBank:
    beta: float = 10.0  # inverse temperature of the inverted softmax (0: off)

    def __post_init__(self) -> None:
        if self.beta < 0:
            raise ValueError(f"querybank normalisation needs beta >= 0, got {self.beta}")

    @property
    def active(self) -> bool:
        return self.beta > 0

    def to_dict(self) -> dict:
        return asdict(self)


OFF = QueryBank(0.0)


def querybank_of(manifest: dict) -> QueryBank:
    """The checkpoint's setting (OFF for checkpoints saved without one)."""
    saved = manifest.get("querybank")
    return QueryBank(**saved) if saved else OFF


def distinct_rows(captions: list[str]) -> np.ndarray:
    """int64: the first row of each distinct caption (case and outer spaces ignored), in order: the bank.

    UCM-Captions' 8,400 training captions hold 1,635 distinct sentences; a bank of those scored as well as
    all 8,400 on val (docs/benchmarks.md) at a fifth of the cost."""
    _, first = np.unique([c.strip().lower() for c in captions], return_index=True)
    return np.sort(first).astype(np.int64)


def gallery_offsets(bank: np.ndarray, gallery: np.ndarray, beta: float, chunk: int = 4096) -> np.ndarray:
    """float32 [N]: ``logsumexp_b(beta * bank_b . gallery_n) / beta`` (what text -> scene scores subtract)."""
    from scipy.special import logsumexp

    bank = np.asarray(bank, dtype=np.float32)
    parts = [
        logsumexp(beta * (bank @ np.asarray(gallery[s : s + chunk], dtype=np.float32).T), axis=0) / beta
        for s in range(0, len(gallery), chunk)
    ]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def save_bank(out: Path, bank: np.ndarray) -> None:
    tmp = Path(out) / f".{BANK_FILE}.tmp{os.getpid()}.npy"
    np.save(tmp, np.asarray(bank, dtype=np.float32))
    os.replace(tmp, Path(out) / BANK_FILE)


def offsets_for(ckpt: str | Path, manifest: dict, gallery: np.ndarray) -> np.ndarray | None:
    """The checkpoint's offsets over ``gallery`` (None when its querybank normalisation is off)."""
    qb = querybank_of(manifest)
    if not qb.active:
        return None
    path = Path(ckpt) / BANK_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{ckpt} uses querybank normalisation but has no {BANK_FILE}")
    return gallery_offsets(np.load(path), gallery, qb.beta)
