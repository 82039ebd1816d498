"""Text <-> pair retrieval scores over the FULL gallery of a split (change and no-change pairs alike).

t2i: every caption of the split is a query; it hits only its own pair. i2t: every pair is a query; it
hits any of its own captions. Numbers are R@1/5/10 in percent and mR (mean of the six).
``t2i_dup`` (duplicate-aware, as in LEVIR-CC practice): a caption also hits any pair that has a caption
with the same text (case and spaces ignored), so "the scene is the same as before" hits every pair it
describes. ``shuffle_before`` is a control: each pair's before image replaced by another pair's.
"""

from __future__ import annotations

import numpy as np
import torch

from rsir.itsr.features import SplitFeatures
from rsir.metrics.retrieval import mean_recall, recall_at_k


def same_text_positives(captions: list[str], caption_pair: np.ndarray, n_pairs: int) -> np.ndarray:
    """bool [M, N]: pair n has a caption whose normalised text equals caption m's (its own pair included)."""
    keys: dict[str, int] = {}
    key = np.array([keys.setdefault(" ".join(c.lower().split()), len(keys)) for c in captions], dtype=np.int64)
    has = np.zeros((len(keys), n_pairs), dtype=bool)
    has[key, caption_pair] = True
    return has[key]


def derangement(n: int, seed: int = 0) -> np.ndarray:
    """A seeded permutation of range(n) that moves every index (n >= 2): the shuffles of the controls."""
    if n < 2:
        raise ValueError(f"a permutation that moves every index needs at least 2, got {n}")
    perm = np.random.default_rng(seed).permutation(n)
    for i in range(n):  # a fixed point swaps with its neighbour: neither keeps its own index afterwards
        if perm[i] == i:
            j = (i + 1) % n
            perm[i], perm[j] = perm[j], perm[i]
    return perm


def shuffle_before(feats: SplitFeatures, seed: int = 0) -> SplitFeatures:
    """A copy of ``feats`` whose pair i has the before image (globals and tokens) of pair perm[i], with
    perm a seeded permutation that moves every pair (the after images and captions stay)."""
    from dataclasses import replace

    n = len(feats.pairs)
    if n < 2:
        raise ValueError("shuffling the before images needs at least 2 pairs")
    perm = derangement(n, seed)
    out = {}
    for name in ("globals_", "tokens"):
        arr = getattr(feats, name)
        if arr is not None:
            arr = np.array(arr)  # a memmap becomes an in-memory copy
            arr[:, 0] = arr[perm, 0]
        out[name] = arr
    return replace(feats, **out)


def batch_inputs(feats: SplitFeatures, idx: np.ndarray, needs_tokens: bool, device: str):
    """(globals, tokens) tensors for pair indices ``idx`` (tokens only when the fusion reads them)."""
    idx = np.sort(idx) if isinstance(feats.tokens, np.memmap) else idx  # memmaps read faster in order
    g = torch.from_numpy(np.ascontiguousarray(feats.globals_[idx])).to(device)
    t = None
    if needs_tokens:
        t = torch.from_numpy(np.ascontiguousarray(feats.tokens[idx])).to(device).float()
    return idx, g, t


@torch.inference_mode()
def embed_split(model, feats: SplitFeatures, device: str = "cpu", batch_size: int = 256):
    """(pair embeddings [N, d], caption embeddings [M, d]) as float32 numpy, L2-normalised."""
    model.eval()
    n = len(feats.pairs)
    pairs = []
    for start in range(0, n, batch_size):
        _, g, t = batch_inputs(feats, np.arange(start, min(start + batch_size, n)), model.needs_tokens, device)
        pairs.append(model.encode_pairs(g, t).float().cpu())
    text = torch.from_numpy(feats.text).to(device)
    texts = [model.encode_text(text[s : s + 4096]).float().cpu() for s in range(0, len(text), 4096)]
    return torch.cat(pairs).numpy(), torch.cat(texts).numpy()


def retrieval_scores(pair_emb: np.ndarray, text_emb: np.ndarray, caption_pair: np.ndarray) -> dict:
    """{"t2i": {r@k}, "i2t": {r@k}, "mR", "gallery_size"} in percent."""
    sim = text_emb @ pair_emb.T  # [M, N]
    positives = caption_pair[:, None] == np.arange(len(pair_emb))[None, :]
    t2i = recall_at_k(sim, positives)
    i2t = recall_at_k(sim.T, positives.T)
    return {"t2i": t2i, "i2t": i2t, "mR": mean_recall(t2i, i2t), "gallery_size": int(len(pair_emb))}


def subset_scores(sim: np.ndarray, caption_pair: np.ndarray, pair_rows: np.ndarray) -> dict:
    """Scores of the queries about a subset of pairs, still against the FULL gallery of the other modality.

    ``pair_rows`` [N] marks the pairs; t2i queries are their captions, i2t queries are the pairs themselves.
    """
    positives = caption_pair[:, None] == np.arange(sim.shape[1])[None, :]
    text_rows = pair_rows[caption_pair]
    t2i = recall_at_k(sim[text_rows], positives[text_rows])
    i2t = recall_at_k(sim.T[pair_rows], positives.T[pair_rows])
    return {"t2i": t2i, "i2t": i2t, "mR": mean_recall(t2i, i2t), "pairs": int(pair_rows.sum())}


def evaluate(
    model, feats: SplitFeatures, device: str = "cpu", detail: bool = False, shuffle_seed: int | None = None
) -> dict:
    """Scores over the full split gallery.

    ``detail`` adds the same scores restricted to the queries about changed pairs (the headline) and about
    unchanged pairs: ``changed`` / ``unchanged``, and duplicate-aware ``t2i_dup`` in every block.
    ``shuffle_seed``: score with shuffled before images (see shuffle_before).
    """
    if shuffle_seed is not None:
        feats = shuffle_before(feats, shuffle_seed)
    pair_emb, text_emb = embed_split(model, feats, device)
    out = retrieval_scores(pair_emb, text_emb, feats.caption_pair)
    if detail:
        sim = text_emb @ pair_emb.T
        same = same_text_positives(feats.captions, feats.caption_pair, len(feats.pairs))
        out["t2i_dup"] = recall_at_k(sim, same)
        changed = np.asarray(feats.changed, dtype=bool)
        for name, rows in (("changed", changed), ("unchanged", ~changed)):
            if rows.any():
                out[name] = subset_scores(sim, feats.caption_pair, rows)
                out[name]["t2i_dup"] = recall_at_k(sim[rows[feats.caption_pair]], same[rows[feats.caption_pair]])
        if shuffle_seed is not None:
            out["shuffled_before_seed"] = shuffle_seed
    return out
