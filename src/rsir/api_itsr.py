"""Public API, text-ITSR: train, evaluate and query a text <-> before/after-pair retrieval model.

    rsir.make_change_set("ucmerced/", "synth/", pairs=200)       # semi-synthetic change captions
    result = rsir.train_itsr("synth/", "runs/gff", fusion="gff-concat+diff", epochs=5)
    model = rsir.open_itsr("runs/gff", "synth/", split="test")
    model.evaluate().mR; model.search_text("a new building appeared", k=5)

The same code as `rsir itsr train / eval / search` (rsir.itsr.pipeline).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

__all__ = [
    "CaptionHit",
    "ItsrModel",
    "ItsrScores",
    "ItsrTrainResult",
    "PairHit",
    "make_change_set",
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

    @classmethod
    def from_dict(cls, d: dict) -> ItsrScores:
        return cls(d["t2i"], d["i2t"], float(d["mR"]), int(d["gallery_size"]))


@dataclass(frozen=True)
class ItsrTrainResult:
    out: Path
    best_epoch: int | None
    val: ItsrScores | None
    epochs_run: int
    train_seconds: float
    history: list[dict]


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
    archive: str | Path, out: str | Path, *, pairs: int = 2500, seed: int = 0, progress: bool = False
) -> dict:
    """A SEMI-SYNTHETIC change-caption set (LEVIR-CC layout) from a scene archive; returns its manifest."""
    from rsir.data.synth import make_synthetic

    return make_synthetic(archive, out, pairs=pairs, seed=seed, progress=progress)


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
    val = ItsrScores.from_dict(s["val"]) if s["val"] else None
    return ItsrTrainResult(Path(out), s["best_epoch"], val, s["epochs_run"], s["train_seconds"], s["history"])


class ItsrModel:
    """A trained checkpoint over one split's gallery of pairs (features cached on first use)."""

    def __init__(self, checkpoint: str | Path, dataset: str | Path, split: str = "test", *, device: str = "cpu",
                 cache_dir: str | Path | None = None, progress: bool = False) -> None:  # fmt: skip
        from rsir.itsr.pipeline import open_for_checkpoint

        cache = Path(cache_dir) if cache_dir else None
        self.model, self.manifest, self._enc, self._feats = open_for_checkpoint(
            checkpoint, dataset, split, device, cache, progress
        )
        self.split = split

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


def open_itsr(checkpoint: str | Path, dataset: str | Path, split: str = "test", **kwargs: Any) -> ItsrModel:
    return ItsrModel(checkpoint, dataset, split, **kwargs)
