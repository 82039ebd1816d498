"""Public API, text-ITSR: train, evaluate and query a text <-> before/after-pair retrieval model.

    rsir.make_change_set("ucmerced/", "synth/", pairs=200)       # semi-synthetic change captions
    result = rsir.train_itsr("synth/", "runs/gff", fusion="gff-concat+diff", epochs=5)
    model = rsir.open_itsr("runs/gff", "synth/", split="test")
    model.evaluate().mR; model.search_text("a new building appeared", k=5)

The same code as `rsir itsr train / eval / search` (rsir.itsr.pipeline).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CaptionHit",
    "ItsrModel",
    "ItsrScores",
    "ItsrTrainResult",
    "PairHit",
    "evaluate_itsr",
    "make_change_set",
    "open_change_set",
    "open_itsr",
    "train_itsr",
]


@dataclass(frozen=True)
class ItsrScores:
    """Recall@1/5/10 in percent, text -> pair (``t2i``) and pair -> text (``i2t``), their mean ``mR``, over a
    gallery of ``gallery_size`` pairs."""

    t2i: dict[str, float]
    i2t: dict[str, float]
    mR: float  # noqa: N815 (the papers' name)
    gallery_size: int
    # the whole report as the CLI prints it (with ``detail``: changed/unchanged blocks, duplicate-aware t2i)
    report: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, d: dict) -> ItsrScores:
        return cls(d["t2i"], d["i2t"], float(d["mR"]), int(d["gallery_size"]), d)

    def block(self, name: str) -> ItsrScores | None:
        """The scores of the queries about ``changed`` or ``unchanged`` pairs (evaluated with ``detail``)."""
        return (
            ItsrScores.from_dict({"gallery_size": self.gallery_size, **self.report[name]})
            if name in self.report
            else None
        )


@dataclass(frozen=True)
class ItsrTrainResult:
    out: Path
    best_epoch: int | None
    val: ItsrScores | None
    epochs_run: int
    train_seconds: float
    history: list[dict]
    report: dict = field(default_factory=dict, compare=False, repr=False)  # train_summary.json

    @classmethod
    def from_summary(cls, out: str | Path, summary: dict) -> ItsrTrainResult:
        """The result of a run from its ``train_summary.json`` (pair and one-date training write the same one)."""
        val = ItsrScores.from_dict(summary["val"]) if summary["val"] else None
        s = summary
        return cls(Path(out), s["best_epoch"], val, s["epochs_run"], s["train_seconds"], s["history"], s)


@dataclass(frozen=True)
class PairHit:
    rank: int
    id: str
    score: float
    before: str
    after: str
    changed: bool
    captions: list[str]


@dataclass(frozen=True)
class CaptionHit:
    rank: int
    caption: str
    score: float
    pair: str


def make_change_set(
    archive: str | Path,
    out: str | Path,
    *,
    pairs: int = 2500,
    seed: int = 0,
    no_change_fraction: float | None = None,
    version: int = 2,
    masks: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = False,
    siblings: float = 0.0,
    workers: int = 1,
) -> dict:
    """A SEMI-SYNTHETIC change-caption set (LEVIR-CC layout) from a scene archive; returns its manifest
    (`rsir itsr synth`)."""
    from rsir.data.synth import make_synthetic

    return make_synthetic(
        archive, out, pairs=pairs, seed=seed, no_change_fraction=no_change_fraction, progress=progress,
        overwrite=overwrite, version=version, masks=Path(masks) if masks is not None else None, siblings=siblings,
        workers=workers,
    )  # fmt: skip


def open_change_set(dataset: str | Path) -> Any:
    """A LEVIR-CC / Dubai-CC style folder (its ``summary()``: pairs per split, changed, skipped captions)."""
    from rsir.data.changecap import open_change_captions

    return open_change_captions(dataset)


def train_itsr(
    dataset: str | Path,
    out: str | Path,
    *,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    restart: bool = False,
    **config: Any,
) -> ItsrTrainResult:
    """Train on ``dataset``'s train split, keeping the best epoch on val (resumable); ``config``: the fields of
    :class:`rsir.train.itsr.ITSRTrainConfig` (``fusion``, ``epochs``, ``dim``, ``finetune``, ``device``...)."""
    from rsir.itsr.pipeline import train
    from rsir.models.fusion import build_fusion
    from rsir.train.itsr import ITSRTrainConfig

    known = {f.name for f in fields(ITSRTrainConfig)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise TypeError(f"unknown ITSR settings {unknown}; known: {sorted(known)}")
    cfg = ITSRTrainConfig(**config)
    build_fusion(cfg.fusion, 8, 8, 4)  # an unknown fusion fails before any feature is computed
    s = train(dataset, out, cfg, Path(cache_dir) if cache_dir else None, progress=progress, restart=restart)
    return ItsrTrainResult.from_summary(out, s)


def evaluate_itsr(
    checkpoint: str | Path,
    dataset: str | Path,
    split: str = "test",
    *,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    detail: bool = True,
    shuffle_seed: int | None = None,
    runtime: str = "auto",
    progress: bool = False,
) -> ItsrScores:
    """Scores over the split's full gallery (`rsir itsr eval`); ``detail``: also the changed / unchanged
    blocks and duplicate-aware t2i; ``shuffle_seed``: the shuffled-before control."""
    from rsir.data.changecap import normalise_split
    from rsir.itsr.pipeline import evaluate_checkpoint

    normalise_split(split)
    cache = Path(cache_dir) if cache_dir else None
    scores = evaluate_checkpoint(checkpoint, dataset, split, device, cache, detail=detail, progress=progress,
                                 shuffle_seed=shuffle_seed, runtime=runtime)  # fmt: skip
    return ItsrScores.from_dict(scores)


class ItsrModel:
    """A trained checkpoint over one split's gallery of pairs (features cached on first use)."""

    def __init__(
        self,
        checkpoint: str | Path,
        dataset: str | Path,
        split: str = "test",
        *,
        device: str = "cpu",
        cache_dir: str | Path | None = None,
        runtime: str = "auto",
        progress: bool = False,
    ) -> None:
        from rsir.data.changecap import normalise_split
        from rsir.itsr.pipeline import open_for_checkpoint

        normalise_split(split)
        cache = Path(cache_dir) if cache_dir else None
        self.model, self.manifest, self._enc, self._feats = open_for_checkpoint(
            checkpoint, dataset, split, device, cache, progress, runtime
        )
        self.split = split
        self._emb: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def pairs(self) -> list:
        """The gallery's before/after pairs (``id``, ``before``, ``after``, ``changed``, ``captions``)."""
        return self._feats.pairs

    @property
    def captions(self) -> list[str]:
        """Every caption of the gallery, with :attr:`caption_pair` (the row of its pair in :attr:`pairs`)."""
        return self._feats.captions

    @property
    def caption_pair(self) -> np.ndarray:
        return np.asarray(self._feats.caption_pair)

    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """(pair embeddings ``[P, D]``, caption embeddings ``[C, D]``) of the gallery, computed once."""
        from rsir.itsr.evaluate import embed_split

        if self._emb is None:
            self._emb = embed_split(self.model, self._feats, self._enc.device)
        return self._emb

    def text_vector(self, text: str) -> np.ndarray:
        """A sentence in the shared space ``[D]`` (what :meth:`search_text` ranks pairs against)."""
        import torch

        with torch.inference_mode():
            t = self._enc.text.encode([text]).to(self._enc.device)
            return self.model.encode_text(t).float().cpu().numpy()[0]

    def pair_vector(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """Two decoded images (float ``[C, H, W]``) -> the pair's embedding ``[D]``, as gallery pairs are embedded."""
        import torch

        from rsir.itsr.features import encode_pair_batch
        from rsir.models.preprocess import prepare

        prep = self._enc.image.config.preprocess
        with torch.inference_mode():
            x = torch.stack([prepare(before, prep), prepare(after, prep)])[None].to(self._enc.device)
            glob, tokens = encode_pair_batch(self._enc.image, x, self.model.config.token_stage)
            return self.model.encode_pairs(glob.float(), tokens.float()).float().cpu().numpy()[0]

    def evaluate(self) -> ItsrScores:
        from rsir.itsr.evaluate import evaluate

        return ItsrScores.from_dict(evaluate(self.model, self._feats, self._enc.device))

    def search_text(self, text: str, k: int = 10) -> list[PairHit]:
        """The split's before/after pairs ranked for a sentence."""
        from rsir.itsr.pipeline import search_text

        return [PairHit(**r) for r in search_text(self.model, self._enc, self._feats, text, k)]

    def search_pair(self, before: str | Path, after: str | Path, k: int = 10) -> list[CaptionHit]:
        """The split's distinct captions ranked for a pair of image files."""
        from rsir.itsr.pipeline import search_pair

        return [CaptionHit(**r) for r in search_pair(self.model, self._enc, self._feats, Path(before), Path(after), k)]

    @staticmethod
    def write_grid(text: str, hits: list[PairHit], path: str | Path) -> Path:
        """A PNG of the ranked before/after pairs of a text query."""
        from rsir.itsr.pipeline import result_grid

        result_grid(text, [asdict(h) for h in hits], Path(path))
        return Path(path)


def open_itsr(checkpoint: str | Path, dataset: str | Path, split: str = "test", **kwargs: Any) -> ItsrModel:
    return ItsrModel(checkpoint, dataset, split, **kwargs)
