"""Text <-> pair retrieval scores over the FULL gallery of a split (change and no-change pairs alike).

t2i: every caption of the split is a query; it hits only its own pair. i2t: every pair is a query; it
hits any of its own captions. Numbers are R@1/5/10 in percent and mR (mean of the six).
"""

from __future__ import annotations

import numpy as np
import torch

from rsir.itsr.features import SplitFeatures
from rsir.metrics.retrieval import mean_recall, recall_at_k


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


def evaluate(model, feats: SplitFeatures, device: str = "cpu", detail: bool = False) -> dict:
    """Scores over the full split gallery.

    ``detail`` adds the same scores restricted to the queries about changed pairs (whose captions name the
    change and, in the synthetic sets, its region) and about unchanged pairs: ``changed`` / ``unchanged``.
    """
    pair_emb, text_emb = embed_split(model, feats, device)
    out = retrieval_scores(pair_emb, text_emb, feats.caption_pair)
    if detail:
        sim = text_emb @ pair_emb.T
        changed = np.asarray(feats.changed, dtype=bool)
        for name, rows in (("changed", changed), ("unchanged", ~changed)):
            if rows.any():
                out[name] = subset_scores(sim, feats.caption_pair, rows)
    return out
