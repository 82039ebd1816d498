"""Public API, words <-> single scenes: train and evaluate a text <-> scene model on a caption dataset
(UCM-Captions, RSICD... Karpathy JSON layout); search an index with it through :meth:`rsir.Index.text_page`.

    result = rsir.train_text("dataset.json", "ucmerced/", "runs/text", epochs=5)
    rsir.evaluate_text("runs/text", "dataset.json", "ucmerced/").mR

The same code as `rsir text train / eval` (rsir.text.pipeline), on the text-ITSR machinery: the results
are the ITSR result types.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from rsir.api_itsr import ItsrScores, ItsrTrainResult

__all__ = ["evaluate_text", "open_caption_set", "train_text"]


def open_caption_set(captions: str | Path, images: str | Path) -> Any:
    """A caption dataset over its image folder (its ``summary()``: images per split, skipped entries)."""
    from rsir.data.captions import open_scene_captions

    return open_scene_captions(captions, images)


def train_text(
    captions: str | Path,
    images: str | Path,
    out: str | Path,
    *,
    cache_dir: str | Path | None = None,
    augment: bool | None = None,
    restart: bool = False,
    progress: bool = False,
    control: str | None = None,
    expand_k: int | None = None,
    expand_weight: float | None = None,
    querybank_beta: float | None = None,
    bridge_k: int | None = None,
    bridge_weight: float | None = None,
    bridge_i2t_weight: float | None = None,
    **config: Any,
) -> ItsrTrainResult:
    """Train on the train split, keeping the best epoch on val (resumable); ``config``: the fields of
    :class:`rsir.train.itsr.ITSRTrainConfig` but ``fusion`` (``epochs``, ``dim``, ``finetune``, ``device``...);
    ``augment`` turns/flips the cached trunk maps of a fine-tuned run (default: when fine-tuning); ``control``
    (``shuffle-images``) trains on deranged images, a run that must score near chance; ``expand_k`` /
    ``expand_weight``: gallery expansion saved in the checkpoint (default k=3, weight 0.3; ``expand_k=0``: off);
    ``querybank_beta``: text -> scene scores normalised by the training captions (default 10; 0: off);
    ``bridge_k`` / ``bridge_weight`` / ``bridge_i2t_weight``: the training-memory bridge saved in the checkpoint
    (rsir.text.bridge; default off; ``bridge_k=10`` turns it on with weights 8 (text -> scene) and 0.2 (scene
    -> text));
    ``text_finetune`` N: the text encoder's last N layers learn too (``text_finetune_lr``)."""
    from rsir.text.bridge import OFF as BRIDGE_OFF
    from rsir.text.bridge import Bridge
    from rsir.text.expansion import Expansion
    from rsir.text.pipeline import DEFAULT_BRIDGE, DEFAULT_EXPANSION, DEFAULT_QUERYBANK, text_config, train
    from rsir.text.querybank import QueryBank
    from rsir.train.itsr import ITSRTrainConfig

    known = {f.name for f in fields(ITSRTrainConfig)} - {"fusion"}
    unknown = sorted(set(config) - known)
    if unknown:
        raise TypeError(f"unknown text training settings {unknown}; known: {sorted(known)}")
    cfg = text_config(**config)
    cache = Path(cache_dir) if cache_dir else None
    expansion = Expansion(
        DEFAULT_EXPANSION.k if expand_k is None else expand_k,
        DEFAULT_EXPANSION.weight if expand_weight is None else expand_weight,
    )
    querybank = DEFAULT_QUERYBANK if querybank_beta is None else QueryBank(querybank_beta)
    on = Bridge()  # the settings chosen on UCM-Captions val, when turned on
    k = DEFAULT_BRIDGE.k if bridge_k is None else bridge_k
    if k == 0 and (bridge_weight is not None or bridge_i2t_weight is not None):
        raise ValueError("--bridge-weight / --bridge-i2t-weight need the bridge on: --bridge-k N (N >= 1)")
    bw = on.weight if bridge_weight is None else bridge_weight
    bi = on.i2t_weight if bridge_i2t_weight is None else bridge_i2t_weight
    bridge = Bridge(k, on.tau, on.temperature, bw, bi) if k > 0 else BRIDGE_OFF
    s = train(captions, images, out, cfg, cache, progress=progress, restart=restart, augment=augment,
              control=control, expansion=expansion, querybank=querybank, bridge=bridge)  # fmt: skip
    return ItsrTrainResult.from_summary(out, s)


def evaluate_text(
    checkpoint: str | Path,
    captions: str | Path,
    images: str | Path,
    split: str = "test",
    *,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    progress: bool = False,
    control: str | None = None,
    control_seed: int = 0,
) -> ItsrScores:
    """R@1/5/10 text -> image and image -> text and mR over the split's full gallery (the published protocol);
    ``report`` adds duplicate-aware text -> image (``t2i_dup_aware``) and the number of caption ``queries``;
    ``control``: ``shuffle-images`` (gallery images deranged, seeded by ``control_seed``) or ``constant-text``
    (one query for all), scores a model must NOT reach."""
    from rsir.text.pipeline import evaluate_checkpoint

    cache = Path(cache_dir) if cache_dir else None
    report = evaluate_checkpoint(checkpoint, captions, images, split, device, cache, progress, control, control_seed)
    return ItsrScores.from_dict(report)
