"""Text queries over a scene index (``rsir index`` output) through a text <-> scene checkpoint.

The index's items are embedded into the checkpoint's shared space once: from the index's own vectors when
they are what the checkpoint's image side reads (same encoder and weights, no metric head; the ``after``
fusion starts with a LayerNorm, so their L2 normalisation changes the result only through its epsilon:
~1e-4 per coordinate, no re-ranking in practice), else by encoding the
index's files with the checkpoint's (possibly fine-tuned) encoder, cached like every other feature, then
expanded over the whole index as the checkpoint says (:mod:`rsir.text.expansion`), with the checkpoint's
querybank offsets (:mod:`rsir.text.querybank`) and its training-memory bridge (:mod:`rsir.text.bridge`: each
scene's training neighbours, once). A query then costs one text-encoder forward, one [N, d] product and, with
the bridge, one product over the training captions and an [N, k] gather.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch

from rsir.data.changecap import ChangePair
from rsir.text.bridge import gallery_bridge_for
from rsir.text.expansion import expand_gallery, expansion_of
from rsir.text.features import scene_globals
from rsir.text.pipeline import default_cache, open_model, text_query_scores
from rsir.text.querybank import offsets_for


def index_globals(index, manifest: dict, enc, cache_dir: Path | None = None, progress: bool = False) -> np.ndarray:
    """float32 [N, D] image globals of the index's items as the checkpoint's image side sees them."""
    m, cfg = index.manifest, manifest["config"]
    same = m.encoder == cfg["encoder"] and m.weights_hash == cfg["encoder_hash"] and not m.head
    if same and enc.image_weights is None:
        return np.array(index.vectors, dtype=np.float32)  # a copy: the memmap is read-only
    scenes = [ChangePair(i, Path(p), Path(p), (), True, "index") for i, p in zip(m.ids, m.paths, strict=True)]
    missing = [s.after for s in scenes if not s.after.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} indexed files are missing (first: {missing[0]}); re-index the archive")
    return scene_globals(scenes, enc.image, Path(cache_dir) if cache_dir else default_cache(), "index", 32, progress)


class SceneTextSearch:
    """A text <-> scene checkpoint over a loaded :class:`rsir.index.faiss_index.SearchIndex`."""

    def __init__(self, index, ckpt: str | Path, device: str = "cpu", cache_dir: Path | None = None, progress=False):
        self.model, self.manifest, self.enc = open_model(ckpt, device)
        self.index, self.device = index, device
        glob = torch.from_numpy(index_globals(index, self.manifest, self.enc, cache_dir, progress))
        with torch.inference_mode():
            parts = [
                self.model.encode_pairs(g[:, None].expand(-1, 2, -1).to(device), None).float().cpu()
                for g in glob.split(4096)
            ]
        plain = torch.cat(parts).numpy()  # [N, d], L2-normalised
        # the checkpoint's training-memory bridge over the index (or None): each scene's training neighbours, once
        self.bridge = gallery_bridge_for(ckpt, self.manifest, plain)
        # the checkpoint's gallery expansion over the whole index, once
        self.image_emb = expand_gallery(plain, expansion_of(self.manifest))
        # [N] or None: the checkpoint's querybank normalisation, one offset per scene (rsir.text.querybank)
        self.offsets = offsets_for(ckpt, self.manifest, self.image_emb)
        self._lock = threading.Lock()  # one text forward at a time: torch already uses every core

    def __len__(self) -> int:
        return len(self.image_emb)

    def text_vector(self, text: str) -> np.ndarray:
        """A sentence -> its [d] query vector (L2-normalised)."""
        if not text.strip():
            raise ValueError("the text query is blank")
        with self._lock, torch.inference_mode():
            t = self.enc.text.encode([text]).to(self.device)
            return self.model.encode_text(t).float().cpu().numpy()[0]

    def scores(self, query: np.ndarray) -> np.ndarray:
        """[N] scores of every scene for a query vector: cosine, less the querybank offsets, plus the training-memory
        bridge, when the model has them (:func:`rsir.text.pipeline.text_query_scores`, one query)."""
        return text_query_scores(query[None], self.image_emb, self.offsets, self.bridge)[0]

    def ranked(
        self, query: np.ndarray, offset: int, k: int, mask: np.ndarray | None = None
    ) -> tuple[int, list[tuple[int, float]]]:
        """(rows passing ``mask``, [(row, score)] of ranks offset+1 .. offset+k), ties by row."""
        scores = self.scores(query)
        rows = np.arange(len(scores)) if mask is None else np.flatnonzero(mask)
        need = min(len(rows), offset + k)
        if need <= 0:
            return len(rows), []
        s = scores[rows]
        top = np.arange(len(rows))
        if need < len(rows):  # the need best, and every row tied with the last of them (ties go by row)
            top = np.flatnonzero(s >= s[np.argpartition(-s, need - 1)[need - 1]])
        top = top[np.lexsort((rows[top], -s[top]))]  # score desc, then row asc: a stable order
        return len(rows), [(int(rows[i]), float(s[i])) for i in top[offset : offset + k]]

    def page(self, text: str, filters=None, offset: int = 0, k: int = 10) -> tuple[int, list[tuple[int, float]]]:
        """(rows passing ``filters``, [(row, score)] of ranks offset+1 .. offset+k): what `rsir search --text`
        and the service's ``/api/search/text`` both answer from. Filters are the index's own (label, date, bbox)."""
        mask = None
        if filters is not None and filters.active:
            self.index.check_filters(filters)
            mask = self.index.columns.mask(filters)
        return self.ranked(self.text_vector(text), offset, k, mask)

    def search(self, text: str, k: int = 10, *, filters=None, offset: int = 0) -> tuple[int, list]:
        """(total, hits): ranks offset+1 .. offset+k as :class:`rsir.cbir.indexing.Hit` (the format of image
        queries)."""
        from rsir.cbir.indexing import Hit

        m = self.index.manifest
        total, ranked = self.page(text, filters, offset, k)
        hits = [Hit(offset + r + 1, m.ids[row], m.paths[row], score, list(m.labels[row])) for r, (row, score) in
                enumerate(ranked)]  # fmt: skip
        return total, hits
