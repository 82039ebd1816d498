"""The public Python API: the three jobs of rsir in a few calls, with typed results.

    import rsir
    archive = rsir.open_archive("path/to/archive")
    index = rsir.build_index(archive, "idx/")
    hits = rsir.open_index("idx/").search_id("beach/beach00", k=5)

CBIR (embed, index, train and load a head, evaluate) lives here; searching a built index in
:mod:`rsir.api_index`; ANNEAL simulation in :mod:`rsir.api_anneal`, a real campaign (answered from Python or
served to people) in :mod:`rsir.api_campaign`; text-ITSR in :mod:`rsir.api_itsr`; words <-> scenes in
:mod:`rsir.api_text`. Everything is re-exported by ``rsir`` itself, lazily (``import rsir`` stays instant).
The CLI and the web apps call these functions and only these for their jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsir.cbir.indexing import Hit, IndexReport, SearchPage
from rsir.cbir.space import Space
from rsir.data.items import Archive, Item
from rsir.embed.local import Embeddings

__all__ = [
    "Archive",
    "Embeddings",
    "Hit",
    "IndexReport",
    "Item",
    "Metrics",
    "SearchPage",
    "Space",
    "TrainResult",
    "append_to_index",
    "build_index",
    "demo_archive",
    "embed_archive",
    "evaluate",
    "load_head",
    "load_space",
    "open_archive",
    "remove_from_index",
    "run_demo",
    "train_head",
]


def open_archive(path: str | Path, layout: str = "auto", strict: bool = False) -> Archive:
    """Read an archive (folders per class, unlabelled folders, BigEarthNet); unreadable files are listed in
    ``archive.skipped`` (``strict``: they raise instead)."""
    from rsir.data.archives import open_archive as _open

    if not Path(path).exists():
        raise FileNotFoundError(f"archive not found: {path}")
    return _open(Path(path), layout=layout, strict=strict)


def demo_archive() -> Archive:
    """The embedded demo archive: 168 UC Merced scenes, 21 classes x 8 (works offline)."""
    from rsir.data.demo import demo_archive_path

    return open_archive(demo_archive_path())


def run_demo(out: str | Path, *, k: int = 10, runtime: str = "auto") -> dict:
    """`rsir demo`: index the demo archive in ``out``, query it, evaluate, train a head, write result grids;
    returns the report (its ``text`` is what the CLI prints)."""
    from rsir.cbir.demo import run_demo as _run

    return _run(Path(out), k=k, runtime=runtime)


def load_space(encoder: str | None = None, head: str | Path | None = None, runtime: str = "auto") -> Space:
    """An embedding space: an encoder (default EfficientNet-Lite0), optionally followed by a trained head
    (whose checkpoint names its encoder and carries fine-tuned encoder weights when there are any)."""
    return Space.load(encoder, Path(head) if head is not None else None, runtime)


def load_head(folder: str | Path) -> Space:
    """The space of a head checkpoint folder written by :func:`train_head` (or an ANNEAL campaign)."""
    return load_space(head=folder)


def embed_archive(
    archive: Archive, *, encoder: str | None = None, head: str | Path | None = None, progress: bool = False
) -> Embeddings:
    """L2-normalised ``float32 [N, D]`` vectors parallel to ``ids`` (cached on disk by encoder weights)."""
    return load_space(encoder, head).embed(archive, progress=progress)


def build_index(
    archive: Archive,
    out: str | Path,
    *,
    encoder: str | None = None,
    head: str | Path | None = None,
    index_type: str = "flat",
    store: str = "faiss",
    runtime: str = "auto",
    engine: str = "local",
    ray_address: str | None = None,
    batch_size: int = 32,
    workers: int = 1,
    strict: bool = False,
    progress: bool = False,
    **params: Any,
) -> IndexReport:
    """Embed ``archive`` and write an index folder ``out`` (``index_type``: flat, ivfpq, hnsw, auto; ``store``:
    ``faiss`` or ``milvus:FILE.db`` / ``milvus:http://HOST:19530``; ``engine``: ``local`` or ``ray`` (at
    ``ray_address``, default a local Ray); ``params``: the other :class:`rsir.index.faiss_index.IndexParams`
    fields, e.g. ``nprobe``). Resumable: a rerun continues. What `rsir index` runs."""
    from rsir.cbir.indexing import index_archive
    from rsir.index.faiss_index import IndexParams

    space = load_space(encoder, head, runtime)
    built = IndexParams(index_type=index_type, **params)
    return index_archive(
        archive, Path(out), space, built, store=store, engine=engine, ray_options=_ray(engine, ray_address),
        batch_size=batch_size, workers=workers, strict=strict, progress=progress,
    )  # fmt: skip


def append_to_index(
    archive: Archive,
    out: str | Path,
    *,
    engine: str = "local",
    ray_address: str | None = None,
    batch_size: int = 32,
    workers: int = 1,
    strict: bool = False,
    progress: bool = False,
) -> IndexReport:
    """Add the items of ``archive`` that the index at ``out`` lacks: only they are embedded, nothing is rebuilt
    (`rsir index --append`)."""
    from rsir.cbir.indexing import append_archive

    return append_archive(
        archive, Path(out), engine=engine, ray_options=_ray(engine, ray_address), batch_size=batch_size,
        workers=workers, strict=strict, progress=progress,
    )  # fmt: skip


def _ray(engine: str, address: str | None) -> Any:
    if engine != "ray":
        if address:
            raise ValueError("--address is for --engine ray")
        return None
    from rsir.embed.ray_engine import RayOptions

    return RayOptions(address=address)


def remove_from_index(out: str | Path, ids: list[str]) -> dict:
    """Drop items by id from the index at ``out`` (`rsir index-remove`); unknown ids remove nothing."""
    from rsir.cbir.indexing import remove_items

    return remove_items(Path(out), list(ids))


@dataclass(frozen=True)
class Metrics:
    """Retrieval scores: ``map_at_k`` (AP@k / min(k, #relevant)), ``map_at_k_hits``, ``p_at_k``,
    ``r_precision``, ``map`` (full ranking), over ``n_queries`` queries with at least one relevant item."""

    k: int
    map_at_k: float
    map_at_k_hits: float
    p_at_k: float
    r_precision: float
    map: float
    n_queries: int

    @classmethod
    def from_dict(cls, d: dict[str, float], k: int) -> Metrics:
        return cls(k, d[f"map@{k}"], d[f"map@{k}_hits"], d[f"p@{k}"], d["r_precision"], d["map"], int(d["n_queries"]))

    def to_dict(self) -> dict[str, float]:
        """The CLI's keys (``map@20``, ``map@20_hits``, ``p@20``, ``r_precision``, ``map``, ``n_queries``)."""
        k = self.k
        return {f"map@{k}": self.map_at_k, f"map@{k}_hits": self.map_at_k_hits, f"p@{k}": self.p_at_k,
                "r_precision": self.r_precision, "map": self.map, "n_queries": self.n_queries}  # fmt: skip


def evaluate(
    archive: Archive,
    *,
    encoder: str | None = None,
    head: str | Path | None = None,
    split: str = "loo",
    k: int = 20,
    seed: int = 0,
    jaccard: float | None = None,
    strict: bool = False,
    progress: bool = False,
    runtime: str = "auto",
) -> Metrics:
    """Score retrieval on a labelled archive: ``split`` is ``loo`` (leave-one-out) or ``holdout:F`` (test
    queries against the train part, the part a head is trained on with the same split and seed)."""
    from rsir.cbir.evaluation import evaluate_vectors, labels_of, split_of

    if not archive.is_labelled:
        raise ValueError(f"{archive.root} has no labels; evaluation needs a labelled archive")
    emb = load_space(encoder, head, runtime).embed(archive, strict=strict, progress=progress)
    labels = labels_of(archive, emb.ids)
    parts = split_of(labels, split, seed)
    m = evaluate_vectors(emb.vectors, labels, parts.query, parts.gallery, k=k, loo=parts.loo, jaccard=jaccard)
    return Metrics.from_dict(m, k)


@dataclass(frozen=True)
class TrainResult:
    """A trained head checkpoint ``out`` and how it was trained (``report``: the checkpoint's JSON)."""

    out: Path
    seconds: float
    split: str
    seed: int
    finetuned_blocks: int = 0
    report: dict = field(default_factory=dict)

    def space(self) -> Space:
        return load_head(self.out)


def train_head(
    archive: Archive,
    out: str | Path,
    *,
    encoder: str | None = None,
    split: str = "holdout:0.2",
    seed: int = 0,
    pairs: str | Path | None = None,
    loss: str | None = None,
    epochs: int = 40,
    finetune: int = 0,
    runtime: str = "auto",
    progress: bool = False,
) -> TrainResult:
    """Train a metric head on the train side of ``split``: from class labels, or from a CSV of answered
    pairs (``id_a,id_b,similar``); ``finetune=N`` also trains the encoder's last N blocks."""
    from rsir.cbir.training import train_cbir
    from rsir.train.metric_head import TrainConfig

    config = TrainConfig(loss=loss or ("balanced" if pairs else "multisimilarity"), epochs=epochs, seed=seed)
    report = train_cbir(
        archive, Path(out), encoder=encoder, split=split, seed=seed,
        pairs_file=Path(pairs) if pairs is not None else None, config=config, finetune_blocks=finetune,
        runtime=runtime, progress=progress,
    )  # fmt: skip
    return TrainResult(Path(out), report["seconds"], split, seed, int(report.get("finetuned_blocks", 0)), report)


# ANNEAL, text-ITSR, scene text and the training configs: the module-level __getattr__ below keeps them in
# their own modules (imported on first use).
_ELSEWHERE = {
    "rsir.train.metric_head": ("TrainConfig",),
    "rsir.active.learner": ("PairTraining",),
    "rsir.train.itsr": ("ITSRTrainConfig",),
    "rsir.api_anneal": ("CampaignPool", "RoundRecord", "SimulationResult", "campaign_pool", "simulate"),
    "rsir.api_campaign": ("Campaign", "invite_annotator", "open_campaign"),
    "rsir.api_itsr": ("ItsrModel", "ItsrScores", "ItsrTrainResult", "PairHit", "CaptionHit", "make_change_set",
                      "open_itsr", "train_itsr", "evaluate_itsr", "open_change_set"),
    "rsir.api_text": ("evaluate_text", "open_caption_set", "train_text"),
    "rsir.api_index": ("Index", "open_index"),
}  # fmt: skip
__all__ += [name for names in _ELSEWHERE.values() for name in names]


def __getattr__(name: str) -> Any:
    for module, names in _ELSEWHERE.items():
        if name in names:
            import importlib

            return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'rsir.api' has no attribute {name!r}")
