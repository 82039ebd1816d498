"""Text-ITSR training: symmetric InfoNCE on frozen, cached features; best-on-validation checkpoint.

Each epoch visits every training pair once, in batches where each pair appears once with ONE caption
sampled from its own captions, so a pair's other captions are never its negatives. Captions with the
same text in one batch (e.g. two no-change pairs) are masked out of each other's negatives too.
A run saves ``last.pt`` every epoch; running again with the same settings continues where it stopped.

Under ``torchrun`` (or any torch.distributed process group) the loop is data-parallel: every rank draws
the same epoch of batches and takes every world-size-th one, DDP averages the gradients (of a fine-tuned
encoder tail too), and rank 0 alone writes checkpoints. Negatives stay within each rank's batch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from rsir.models.fusion import TFFConfig
from rsir.train import distributed
from rsir.train.config import Optimisation
from rsir.train.inputs import NothingLearns, TrainingInputs
from rsir.train.loop import FitState, Validation, fit, lambda_schedule, warmup_cosine

LAST = "last.pt"
# Settings that may differ between a run and its continuation.
_RESUMABLE_CHANGES = {"epochs", "patience", "device"}


@dataclass(frozen=True, kw_only=True)
class ITSRTrainConfig(Optimisation):
    """Text-ITSR training: the shared optimisation fields (ITSR's defaults below) plus the model's."""

    fusion: str = "gate-tff"  # the best on v2 from both archives (docs/benchmarks.md, fourth pass)
    epochs: int = 30
    seed: int = 0
    dim: int = 256
    batch_size: int = 128
    lr: float = 5e-4
    weight_decay: float = 0.05  # on matrices only: biases, norms and position/time embeddings get none
    warmup_epochs: float = 1.0
    dropout: float = 0.1
    encoder: str = "efficientnet-lite0"
    text_encoder: str = "all-minilm-l6-v2"
    tff: dict = field(default_factory=lambda: TFFConfig().to_dict())
    patience: int | None = None  # stop after this many epochs without a better val mR
    finetune: int = 0  # train the image encoder's last N blocks too (0 = frozen encoders, cached features)
    finetune_lr: float = 1e-4
    text_finetune: int = 0  # train the text encoder's last N layers too (0 = frozen, cached caption features)
    text_finetune_lr: float = 2e-5
    device: str = "cpu"
    # tokens from the map after all but the encoder's last N blocks (0: final tokens); None: the fusion's
    # own default (rsir.itsr.pipeline.resolve_token_stage: 5 for gate-tff where the encoder can split)
    token_stage: int | None = None
    sibling_batches: bool = False  # pairs sharing a before scene in one batch (hard negatives; synth sets)
    # loss weight of a changed pair's rows against an unchanged pair's 1 (content-free no-change captions)
    changed_weight: float = 1.0
    runtime: str = "auto"  # frozen image passes (features, trunk maps): auto, onnx or torch (rsir.models.runtime)

    def to_dict(self) -> dict:
        return asdict(self)


def info_nce(
    image: torch.Tensor,
    text: torch.Tensor,
    scale: torch.Tensor | float,
    pair_ids: torch.Tensor | None = None,
    text_keys: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE; row i of ``image`` matches row i of ``text``.

    Off-diagonal entries that share a pair id (the same pair twice) or a text key (identical captions)
    are not negatives: they are removed from both softmaxes. ``weights`` [B] (optional): row i's share of
    the mean, in both directions (e.g. changed pairs weighted above unchanged ones).
    """
    logits = scale * image @ text.T
    b = logits.shape[0]
    not_negative = torch.zeros(b, b, dtype=torch.bool, device=logits.device)
    for ids in (pair_ids, text_keys):
        if ids is not None:
            not_negative |= ids[:, None] == ids[None, :]
    not_negative &= ~torch.eye(b, dtype=torch.bool, device=logits.device)
    logits = logits.masked_fill(not_negative, float("-inf"))
    target = torch.arange(b, device=logits.device)
    if weights is None:
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    per_row = F.cross_entropy(logits, target, reduction="none") + F.cross_entropy(logits.T, target, reduction="none")
    return 0.5 * (weights * per_row).sum() / weights.sum()


def caption_batches(
    offsets: np.ndarray, batch_size: int, rng: np.random.Generator, groups: np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """One epoch: (pair indices, caption indices) per batch; each pair once, with one of its captions.

    ``groups`` (int [N], optional): pairs with the same value (siblings: the same before scene with
    different changes) go into one batch, so each is the other's hard negative; groups are shuffled and
    packed whole (a group larger than the batch is cut), batches may then be a little smaller.
    """
    n = len(offsets) - 1
    counts = offsets[1:] - offsets[:-1]
    if groups is None:
        order = rng.permutation(n)
        batches = [order[s : s + batch_size] for s in range(0, n, batch_size)]
    else:
        batches = _group_batches(np.asarray(groups), batch_size, rng)
    caption = offsets[:-1] + np.floor(rng.random(n) * counts).astype(np.int64)
    if len(batches) > 1 and len(batches[-1]) < 2:  # a batch of one has no negatives
        last = batches.pop()
        batches[-1] = np.concatenate([batches[-1], last])
    return [(b, caption[b]) for b in batches]


def _group_batches(groups: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Batches of pair indices holding each group whole (in a random order of groups and of members)."""
    members: dict[int, list[int]] = {}
    for i in rng.permutation(len(groups)):
        members.setdefault(int(groups[i]), []).append(int(i))
    batches: list[list[int]] = [[]]
    for g in rng.permutation(np.array(list(members), dtype=np.int64)):
        group = members[int(g)]
        while group:
            if len(batches[-1]) + min(len(group), batch_size) > batch_size:
                batches.append([])
            take = batch_size - len(batches[-1])
            batches[-1] += group[:take]
            group = group[take:]
    return [np.array(b, dtype=np.int64) for b in batches if b]


def scene_groups(pairs) -> np.ndarray:
    """int [N]: one id per before scene (``pair.meta["scene"]``, synth sets); a pair without one is alone."""
    ids: dict[object, int] = {}
    return np.array(
        [ids.setdefault(p.meta.get("scene", ("pair", i)), len(ids)) for i, p in enumerate(pairs)], dtype=np.int64
    )


def _text_keys(captions: list[str]) -> np.ndarray:
    ids: dict[str, int] = {}
    return np.array([ids.setdefault(c.strip().lower(), len(ids)) for c in captions], dtype=np.int64)


def _check_resume(state: dict, config: ITSRTrainConfig, out: Path) -> None:
    ignore = _RESUMABLE_CHANGES | ({"tff"} if config.fusion != "tff" else set())  # unused by other fusions
    saved = {**ITSRTrainConfig().to_dict(), **state["train_config"]}  # settings added since have their defaults
    old = {k: v for k, v in saved.items() if k not in ignore}
    new = {k: v for k, v in config.to_dict().items() if k not in ignore}
    if old != new:
        diff = sorted(k for k in new if old.get(k) != new[k])
        raise ValueError(
            f"{out / LAST} was trained with other settings ({', '.join(diff)}); use another --out, or --restart"
        )


class ImageInputs(TrainingInputs, Protocol):
    """Where a training step's image side comes from (frozen cached features, or a learning encoder tail)."""

    def batch(self, pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]: ...


class TextInputs(TrainingInputs, Protocol):
    """Where a training step's text side comes from (cached caption features, or learning top layers)."""

    def batch(self, captions: torch.Tensor) -> torch.Tensor: ...


class FrozenImages(NothingLearns):
    """Image inputs from the frozen encoder's cached features (the default)."""

    def __init__(self, model, train_feats, device: str) -> None:
        self.glob = torch.from_numpy(np.ascontiguousarray(train_feats.globals_)).to(device)
        self.tokens = None
        if model.needs_tokens:  # float16 in memory; cast per batch
            self.tokens = model.reduce_tokens(torch.from_numpy(np.array(train_feats.tokens))).to(device)

    def batch(self, pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.glob[pairs], self.tokens[pairs].float() if self.tokens is not None else None


class _Step(torch.nn.Module):
    """One forward pass of a batch as a module (model + trainable image tail), so DDP can wrap it."""

    def __init__(self, model, images, texts) -> None:
        super().__init__()
        self.model, self.images, self.texts = model, images, texts
        self.trainable = images.trainable  # registered as submodules: DDP averages their gradients too
        self.text_trainable = texts.trainable

    def forward(self, pairs: torch.Tensor, captions: torch.Tensor):
        img = self.model.encode_pairs(*self.images.batch(pairs))
        return img, self.model.encode_text(self.texts.batch(captions)), self.model.scale()


class _Trainer:
    def __init__(self, model, train_feats, images, texts, config: ITSRTrainConfig, manifest_extra: dict):
        self.model, self.train, self.images, self.texts = model, train_feats, images, texts
        self.step = distributed.wrap(_Step(model, images, texts))
        self.config, self.extra = config, manifest_extra
        dev = config.device
        self.keys = torch.from_numpy(_text_keys(train_feats.captions)).to(dev)
        self.pair_weight = None
        if config.changed_weight != 1.0:
            if config.changed_weight <= 0:
                raise ValueError(f"changed_weight must be > 0, got {config.changed_weight}")
            changed = torch.from_numpy(train_feats.changed).to(dev)
            self.pair_weight = torch.where(changed, config.changed_weight, 1.0)
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "pos" not in n and "time" not in n]
        other = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "pos" not in n and "time" not in n)]
        groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": other, "weight_decay": 0.0}]
        groups = (
            [{**g, "base_lr": config.lr} for g in groups] + images.param_groups(config) + texts.param_groups(config)
        )
        self.optim = config.adamw(groups)  # each group carries its own weight decay
        self.steps_per_epoch = len(distributed.shard(self.batches(0)))

    def batches(self, epoch: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """All batches of an epoch (the loop takes this rank's share under a process group). Called at the start
        of each epoch: back to training mode after the previous epoch's validation."""
        self.model.train()
        rng = np.random.default_rng([self.config.seed, epoch])
        groups = scene_groups(self.train.pairs) if self.config.sibling_batches else None
        return caption_batches(self.train.caption_offsets, self.config.batch_size, rng, groups)

    def loss(self, batch: tuple[np.ndarray, np.ndarray]) -> torch.Tensor:
        """The objective's loss for :func:`rsir.train.loop.fit` (one InfoNCE step)."""
        pairs, caps = batch
        p = torch.from_numpy(pairs).to(self.keys.device)
        c = torch.from_numpy(caps).to(self.keys.device)
        img, txt, scale = self.step(p, c)
        w = self.pair_weight[p] if self.pair_weight is not None else None
        return info_nce(img, txt, scale, pair_ids=p, text_keys=self.keys[c], weights=w)


def train_itsr(
    model,
    train_feats,
    val_feats,
    config: ITSRTrainConfig,
    out: str | Path,
    manifest_extra: dict | None = None,
    progress: bool = True,
    restart: bool = False,
    images: ImageInputs | None = None,
    texts: TextInputs | None = None,
    *,
    evaluate: Callable[[Any, Any, str], dict],
    save_best: Callable[[Path, Any, int, dict, dict], None],
) -> dict:
    """Train ``model`` in place; writes the best checkpoint to ``out`` and returns a summary.

    ``images`` supplies the image side (default :class:`FrozenImages`; fine-tuning passes
    :class:`rsir.train.itsr_finetune.TunedTail`, which also saves the encoder with each best checkpoint);
    ``texts`` the text side (default the cached caption features; :class:`rsir.train.text_finetune.TunedText`
    fine-tunes the text encoder's top layers and saves them with each best checkpoint).
    The ITSR workflow supplies ``evaluate(model, val_features, device) -> scores`` (with ``mR``) and
    ``save_best(out, model, epoch, val_scores, manifest_extra)``: training knows no checkpoint format.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    distributed.setup()  # joins torchrun's process group when launched by it
    main = distributed.is_main()  # only rank 0 writes files; all ranks hold the same weights
    torch.manual_seed(config.seed)
    images = images if images is not None else FrozenImages(model, train_feats, config.device)
    assert images is not None
    if texts is None:
        from rsir.train.text_finetune import FrozenText

        texts = FrozenText(train_feats, config.device)
    trainer = _Trainer(model, train_feats, images, texts, config, manifest_extra or {})
    state = FitState()
    if (out / LAST).is_file() and not restart:
        saved = torch.load(out / LAST, map_location=config.device, weights_only=False)
        _check_resume(saved, config, out)
        model.load_state_dict(saved["model"])
        images.load_state_dict(saved.get("images", {}))
        texts.load_state_dict(saved.get("texts", {}))
        trainer.optim.load_state_dict(saved["optim"])
        for group in trainer.optim.param_groups:  # runs saved before per-group base rates
            group.setdefault("base_lr", config.lr)
        torch.set_rng_state(saved["torch_rng"])
        state = FitState.from_dict(saved["state"])
    spe = trainer.steps_per_epoch
    factor = warmup_cosine(config.epochs * spe, int(config.warmup_epochs * spe))
    schedule = lambda_schedule(trainer.optim, factor, done_steps=(state.epoch + 1) * spe)

    def validate(epoch: int) -> dict:
        return evaluate(model, texts.val_features(images.val_features(val_feats)), config.device)

    def on_epoch(st: FitState, improved: bool) -> None:
        assert st.best is not None  # validated every epoch
        if main and improved:
            images.save(out)  # before the manifest: a checkpoint with a manifest is complete
            texts.save(out)
            extra = {"train": config.to_dict(), **trainer.extra}
            save_best(out, model, st.epoch + 1, st.best["val"], extra)
        if main:
            _save_last(out, config, model, (images, texts), trainer.optim, st.to_dict())
        if progress and main:
            row, best = st.history[-1], st.best["val"]["mR"]
            print(f"epoch {st.epoch + 1}: loss {row['loss']:.3f}  val mR {row['val_mR']:.2f}  (best {best:.2f})")

    state = fit(
        trainer, trainer.optim, epochs=config.epochs, scheduler=schedule, clip_grad=1.0,
        validation=Validation(validate, "mR", config.patience), state=state, on_epoch=on_epoch,
        progress=progress, desc="itsr epochs",
    )  # fmt: skip
    # Reported epochs count from 1, as the progress lines and `epochs_run` do (the state counts from 0).
    summary = {
        "best_epoch": state.best["epoch"] + 1 if state.best else None,
        "val": state.best["val"] if state.best else None,
        "epochs_run": state.epoch + 1,
        "train_seconds": round(state.train_seconds, 2),
        "history": [{**h, "epoch": h["epoch"] + 1} for h in state.history],
    }
    if main:
        (out / "train_summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _save_last(out: Path, config: ITSRTrainConfig, model, inputs: tuple, optim, state: dict) -> None:
    """``last.pt``, atomically: a crash while writing leaves the previous one whole."""
    tmp = out / f".{LAST}.tmp{os.getpid()}"
    torch.save(
        {
            "train_config": config.to_dict(),
            "model": model.state_dict(),
            "images": inputs[0].state_dict(),
            "texts": inputs[1].state_dict(),
            "optim": optim.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "state": state,
        },
        tmp,
    )
    os.replace(tmp, out / LAST)
