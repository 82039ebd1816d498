"""Text-ITSR end to end: dataset -> cached features -> train / evaluate / search a checkpoint."""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np
import torch

from rsir.data.changecap import ChangeCaptionArchive, load_pair_image, open_change_captions
from rsir.itsr.evaluate import evaluate
from rsir.itsr.features import SplitFeatures, default_cache_dir, encode_pair_batch, split_features
from rsir.itsr.model import ITSRConfig, ITSRModel, load_checkpoint, manifest_dict, save_checkpoint
from rsir.train.itsr import ITSRTrainConfig, train_itsr


@cache
def _image_encoder(name: str, device: str):
    from rsir.models.encoders import load_encoder

    return load_encoder(name, device=device)


@cache
def _text_encoder(name: str, device: str):
    from rsir.models.text import load_text_encoder

    return load_text_encoder(name, device=device)


@cache
def _tuned_text_encoder(name: str, weights: Path, device: str, stamp: int):
    """The text encoder with a checkpoint's fine-tuned top layers; ``stamp``: as for the image encoder."""
    state = torch.load(weights, map_location="cpu", weights_only=True)
    return _text_encoder(name, device).with_top_layers(state).to(device)


@cache
def _finetuned_encoder(name: str, weights: Path, device: str, stamp: int):
    """``stamp`` (the file's mtime) makes a rewritten weights file load anew."""
    from rsir.models.encoders import load_encoder, load_finetuned_weights

    return load_finetuned_weights(load_encoder(name, device=device), weights)


class Encoders:
    """The two pretrained encoders, loaded lazily and once per process (MiniLM takes seconds).

    ``image_weights``: fine-tuned image-encoder weights (a checkpoint's ``encoder.pt``) to use instead;
    ``text_weights``: the text encoder's fine-tuned top layers (a checkpoint's ``text_encoder.pt``).
    """

    def __init__(
        self,
        image: str,
        text: str,
        device: str = "cpu",
        image_weights: Path | None = None,
        runtime: str = "auto",
        text_weights: Path | None = None,
    ) -> None:
        from rsir.models.runtime import RUNTIMES

        if runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
        self.image_name, self.text_name, self.device, self.runtime = image, text, device, runtime
        self.image_weights = Path(image_weights).resolve() if image_weights else None
        self.text_weights = Path(text_weights).resolve() if text_weights else None

    @property
    def image(self):
        from rsir.models.runtime import set_runtime

        if self.image_weights is not None:
            stamp = self.image_weights.stat().st_mtime_ns
            encoder = _finetuned_encoder(self.image_name, self.image_weights, self.device, stamp)
        else:
            encoder = _image_encoder(self.image_name, self.device)
        return set_runtime(encoder, self.runtime)

    @property
    def pretrained_image_hash(self) -> str:
        return _image_encoder(self.image_name, self.device).weights_hash

    @property
    def text(self):
        if self.text_weights is not None:
            stamp = self.text_weights.stat().st_mtime_ns
            return _tuned_text_encoder(self.text_name, self.text_weights, self.device, stamp)
        return _text_encoder(self.text_name, self.device)

    @property
    def text_cache_key(self) -> str:
        """What caption features are cached under: the pretrained weights' hash, plus the tuned layers' digest."""
        if self.text_weights is None:
            return self.text_hash
        import hashlib

        return f"{self.text_hash}-tuned{hashlib.sha256(self.text_weights.read_bytes()).hexdigest()[:12]}"

    @property
    def text_hash(self) -> str:
        from rsir.models.text import text_weights_hash

        return text_weights_hash(self.text_name)


def load_features(
    archive: ChangeCaptionArchive,
    splits: list[str],
    encoders: Encoders,
    cache_dir: Path,
    progress: bool = True,
    token_stage: int = 0,
) -> dict[str, SplitFeatures]:
    return {s: split_features(archive, s, encoders, cache_dir, progress, token_stage=token_stage) for s in splits}


def train(
    dataset: str | Path,
    out: str | Path,
    config: ITSRTrainConfig,
    cache_dir: Path | None = None,
    progress: bool = True,
    restart: bool = False,
) -> dict:
    """Train a text-ITSR model on DATASET's train split, selecting the best epoch on val."""
    if config.text_finetune:
        raise ValueError("--text-finetune is for `rsir text train` (single-date scenes) only")
    archive = open_change_captions(dataset)
    cache_dir = cache_dir or default_cache_dir(Path(dataset), Path(out).resolve().parent)
    enc = Encoders(config.encoder, config.text_encoder, config.device, runtime=config.runtime)
    config = resolve_token_stage(config, enc)
    splits = ["train", "val"]
    if config.finetune and config.token_stage:
        raise ValueError("--token-stage and --finetune cannot be combined (the tuned tail makes the final tokens)")
    feats = {
        s: split_features(
            archive, s, enc, cache_dir, progress, images=not config.finetune, token_stage=config.token_stage
        )
        for s in splits
    }
    train_f, images = feats["train"], None
    if config.finetune:
        images = _tuned_tail(archive, enc, config, cache_dir, progress)
        image_dim, token_dim, n_tokens = images.shapes()
    else:
        image_dim, token_dim, n_tokens = train_f.globals_.shape[-1], train_f.tokens.shape[-1], train_f.tokens.shape[-2]
    model = new_model(config, enc, (image_dim, token_dim, n_tokens), train_f.text.shape[-1])
    extra = {
        "dataset": {
            "root": str(Path(dataset).resolve()),
            "kind": archive.kind,
            "train_pairs": len(train_f.pairs),
            "val_pairs": len(feats["val"].pairs),
        },
        "finetuned_blocks": config.finetune,
    }
    return train_itsr(
        model, train_f, feats["val"], config, out, extra, progress=progress, restart=restart, images=images,
        evaluate=evaluate, save_best=save_best_checkpoint,
    )  # fmt: skip


# Fusions whose default token map is an earlier, finer one: N = the encoder's last N blocks left out
# (5: the 14x14x112 map of EfficientNet-Lite0), measured best for them on v2 from two archives.
FINE_TOKEN_STAGE = {"gate-tff": 5, "gate-tff-32": 5}


def resolve_token_stage(config: ITSRTrainConfig, enc: Encoders) -> ITSRTrainConfig:
    """``config`` with ``token_stage`` None replaced by the fusion's default: :data:`FINE_TOKEN_STAGE` when
    the encoder is frozen (no ``finetune``) and can be split there, else 0 (the final tokens)."""
    if config.token_stage is not None:
        return config
    stage = 0 if config.finetune else FINE_TOKEN_STAGE.get(config.fusion, 0)
    if stage:
        from rsir.models.encoders import EncoderUnavailable

        try:
            enc.image.split(stage)
        except (EncoderUnavailable, ValueError):  # cannot be split (open_clip), or too few blocks
            stage = 0
    return replace(config, token_stage=stage)


def new_model(
    config: ITSRTrainConfig, enc: Encoders, image_shapes: tuple[int, int, int], text_dim: int, fusion: str = ""
) -> ITSRModel:
    """A freshly initialised (seeded) model for ``config``: its image side takes features of ``image_shapes``
    (image_dim, token_dim, n_tokens), its text side ``text_dim``; ``fusion`` overrides the config's."""
    image_dim, token_dim, n_tokens = image_shapes
    model_config = ITSRConfig(
        fusion=fusion or config.fusion,
        encoder=config.encoder,
        encoder_hash=enc.pretrained_image_hash,
        image_dim=image_dim,
        token_dim=token_dim,
        n_tokens=n_tokens,
        text_encoder=config.text_encoder,
        text_hash=enc.text_hash,
        text_dim=text_dim,
        dim=config.dim,
        tff=config.tff,
        dropout=config.dropout,
        token_stage=config.token_stage or 0,
    )
    torch.manual_seed(config.seed)
    return ITSRModel(model_config).to(config.device)


def save_best_checkpoint(out: Path, model: ITSRModel, epoch: int, val: dict, extra: dict) -> None:
    save_checkpoint(out, model, manifest_dict(model.config, epoch, val, extra))


def _tuned_tail(archive: ChangeCaptionArchive, enc: Encoders, config: ITSRTrainConfig, cache_dir: Path, progress):
    """A fresh copy of the encoder (the cached one stays pretrained) whose last blocks will learn."""
    from rsir.itsr.features import trunk_features
    from rsir.models.encoders import load_encoder
    from rsir.models.runtime import set_runtime
    from rsir.train.itsr_finetune import TunedTail

    encoder = set_runtime(load_encoder(config.encoder, device=config.device), config.runtime)
    maps = {
        s: trunk_features(
            archive.split(s).pairs, encoder, config.finetune, cache_dir, s, progress=progress, device=config.device
        )
        for s in ("train", "val")
    }
    return TunedTail(encoder, config.finetune, maps["train"], maps["val"], config.device)


def checked_encoders(
    manifest: dict,
    device: str,
    image_weights: Path | None = None,
    runtime: str = "auto",
    text_weights: Path | None = None,
) -> Encoders:
    """The checkpoint's encoders, refused when their weights differ from the ones it was trained on (shared with
    rsir.text)."""
    cfg = manifest["config"]
    enc = Encoders(cfg["encoder"], cfg["text_encoder"], device, image_weights, runtime, text_weights)
    for what, have, want in (
        ("image", enc.pretrained_image_hash, cfg["encoder_hash"]),
        ("text", enc.text_hash, cfg["text_hash"]),
    ):
        if have != want:
            raise ValueError(f"the {what} encoder's weights ({have}) differ from the checkpoint's ({want})")
    return enc


def open_for_checkpoint(
    ckpt: str | Path,
    dataset: str | Path,
    split: str,
    device: str = "cpu",
    cache_dir: Path | None = None,
    progress: bool = True,
    runtime: str = "auto",
):
    from rsir.models.heads import ENCODER_WEIGHTS

    model, manifest = load_checkpoint(ckpt, device)
    tuned = Path(ckpt) / ENCODER_WEIGHTS  # present when the image encoder was fine-tuned
    enc = checked_encoders(manifest, device, tuned if tuned.is_file() else None, runtime)
    cache_dir = cache_dir or default_cache_dir(Path(dataset), Path(ckpt).resolve().parent)
    stage = model.config.token_stage
    feats = load_features(open_change_captions(dataset), [split], enc, cache_dir, progress, stage)[split]
    return model, manifest, enc, feats


def evaluate_checkpoint(
    ckpt: str | Path,
    dataset: str | Path,
    split: str = "test",
    device: str = "cpu",
    cache_dir: Path | None = None,
    detail: bool = False,
    progress: bool = True,
    runtime: str = "auto",
    shuffle_seed: int | None = None,
) -> dict:
    """Scores of a checkpoint on a split (see rsir.itsr.evaluate.evaluate); ``shuffle_seed``: the
    shuffled-before control."""
    from rsir.itsr.evaluate import evaluate

    model, _, _, feats = open_for_checkpoint(ckpt, dataset, split, device, cache_dir, progress, runtime)
    return evaluate(model, feats, device, detail=detail, shuffle_seed=shuffle_seed)


def search_text(model: ITSRModel, enc: Encoders, feats: SplitFeatures, text: str, k: int = 10) -> list[dict]:
    """Top-k pairs of the split's gallery for a sentence."""
    from rsir.itsr.evaluate import embed_split

    pair_emb, _ = embed_split(model, feats, enc.device)
    with torch.inference_mode():
        q = model.encode_text(enc.text.encode([text]).to(enc.device)).float().cpu().numpy()[0]
    scores = pair_emb @ q
    order = np.argsort(-scores, kind="stable")[:k]
    return [
        {
            "rank": r + 1,
            "id": feats.pairs[i].id,
            "score": float(scores[i]),
            "before": str(feats.pairs[i].before),
            "after": str(feats.pairs[i].after),
            "changed": feats.pairs[i].changed,
            "captions": list(feats.pairs[i].captions),
        }
        for r, i in enumerate(order)
    ]


def search_pair(
    model: ITSRModel, enc: Encoders, feats: SplitFeatures, before: Path, after: Path, k: int = 10
) -> list[dict]:
    """Top-k distinct captions of the split for a (before, after) pair of image files."""
    from rsir.itsr.evaluate import embed_split
    from rsir.models.preprocess import prepare

    prep = enc.image.config.preprocess
    x = torch.stack([prepare(load_pair_image(Path(p)), prep) for p in (before, after)])[None].to(enc.device)
    glob, tokens = encode_pair_batch(enc.image, x, model.config.token_stage)
    with torch.inference_mode():
        q = model.encode_pairs(glob.float(), tokens.float()).float().cpu().numpy()[0]
    _, text_emb = embed_split(model, feats, enc.device)
    captions = feats.captions
    scores = text_emb @ q
    out, seen = [], set()
    for i in np.argsort(-scores, kind="stable"):
        key = captions[i].strip().lower()
        if key in seen:
            continue
        seen.add(key)
        out.append(
            {
                "rank": len(out) + 1,
                "caption": captions[i],
                "score": float(scores[i]),
                "pair": feats.pairs[feats.caption_pair[i]].id,
            }
        )
        if len(out) == k:
            break
    return out


def result_grid(query: str, results: list[dict], path: str | Path, thumb: int = 128) -> Path:
    """PNG (or HTML): one row per result, before | after, captioned with rank, id and score."""
    from rsir.viz.grid import Cell, write_grid

    cells = [
        Cell([Path(r["before"]), Path(r["after"])],
             f"#{r['rank']} {r['id']}  {r['score']:.3f}" + ("" if r.get("changed", True) else " (no change)"))
        for r in results
    ]  # fmt: skip
    return write_grid(None, cells, Path(path), columns=1, size=thumb, title=f"query: {query}")
