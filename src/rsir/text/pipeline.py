"""Text <-> scene retrieval on single-date caption datasets, on the text-ITSR machinery.

Training, checkpoints and the loss are text-ITSR's (:mod:`rsir.train.itsr`, :mod:`rsir.itsr.model`) with
the ``after`` fusion over one date; this module only feeds it single-date features and scores the result
with the published protocol of the field (UCM-Captions, RSICD, RSITMD):

- t2i: every caption of the split is a query and hits only its own image;
- i2t: every image is a query and hits when any of its own captions is in the top k;
- mR: the mean of the six recalls (percent);
- beside it, ``t2i_dup_aware``: a caption also hits any image that carries an identical caption (UCM has
  few distinct sentences: 868 of its 1,050 test captions also belong to another test image, which caps
  the strict t2i R@1 at 38.3%).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from rsir.data.captions import open_scene_captions
from rsir.itsr.model import ITSRModel, load_checkpoint
from rsir.itsr.pipeline import Encoders, checked_encoders, new_model, save_best_checkpoint
from rsir.metrics.retrieval import mean_recall, recall_at_k
from rsir.text.bridge import OFF as BRIDGE_OFF
from rsir.text.bridge import Bridge, GalleryBridge, Memory, carries_of, gallery_bridge_for
from rsir.text.controls import TRAIN_CONTROLS, apply_control, check_control
from rsir.text.expansion import OFF, Expansion, expand_gallery, expansion_of
from rsir.text.features import scene_split_features, scene_trunk_maps
from rsir.text.querybank import OFF as QB_OFF
from rsir.text.querybank import QueryBank, distinct_rows, gallery_offsets, offsets_for, save_bank
from rsir.train.itsr import ITSRTrainConfig, train_itsr

FUSION = "after"  # one date: the fusion that reads the (only) image
DEFAULT_EXPANSION = Expansion(k=3, weight=0.3)  # chosen on UCM-Captions val (docs/benchmarks.md)
DEFAULT_QUERYBANK = QueryBank(beta=10.0)  # chosen on UCM-Captions val (docs/benchmarks.md)
DEFAULT_BRIDGE = BRIDGE_OFF  # off: its val gain did not hold on test (docs/benchmarks.md, fourth pass)
DEFAULT_FINETUNE, FINETUNE_EPOCHS, FROZEN_EPOCHS = 1, 10, 30  # rsir text train's defaults (text_config)


def default_cache() -> Path:
    from rsir.embed.cache import cache_root

    return cache_root()


def text_config(**settings) -> ITSRTrainConfig:
    """The training settings of text <-> scene models (text-ITSR's, with the one-date ``after`` fusion).

    Defaults (the best measured on UCM-Captions, docs/benchmarks.md): the image encoder's last block
    fine-tuned (``finetune=1``) for 10 epochs; frozen encoders (``finetune=0``) default to 30 epochs.
    """
    finetune = settings.pop("finetune", DEFAULT_FINETUNE)
    epochs = settings.pop("epochs", None) or (FINETUNE_EPOCHS if finetune else FROZEN_EPOCHS)
    return ITSRTrainConfig(fusion=FUSION, finetune=finetune, epochs=epochs, **settings)


def train(
    captions: str | Path,
    images: str | Path,
    out: str | Path,
    config: ITSRTrainConfig,
    cache_dir: Path | None = None,
    progress: bool = True,
    restart: bool = False,
    augment: bool | None = None,
    control: str | None = None,
    expansion: Expansion = DEFAULT_EXPANSION,
    querybank: QueryBank = DEFAULT_QUERYBANK,
    bridge: Bridge = DEFAULT_BRIDGE,
) -> dict:
    """Train on the train split, keep the best epoch on val; ``augment`` turns/flips fine-tuned trunk maps
    (default: on when fine-tuning).

    ``expansion``: the gallery-side neighbour expansion (:mod:`rsir.text.expansion`) saved with the model;
    validation (best epoch), `rsir text eval` and text search all score with it; ``querybank`` likewise, the
    text -> scene normalisation by the training captions (:mod:`rsir.text.querybank`); ``bridge`` likewise,
    the training-memory bridge (:mod:`rsir.text.bridge`).

    ``control="shuffle-images"`` trains on a seeded derangement of the train images (val stays true): the
    image-ignoring control of :mod:`rsir.text.controls`, which must score near chance.
    """
    if config.fusion != FUSION:
        raise ValueError(f"single-date caption models use the {FUSION!r} fusion, not {config.fusion!r}")
    augment = bool(config.finetune) if augment is None else augment
    if augment and not config.finetune:
        raise ValueError("--augment turns the cached trunk maps: it needs --finetune N (N >= 1)")
    check_control(control, TRAIN_CONTROLS)
    if control and config.finetune:
        raise ValueError(f"the {control} control trains on frozen features: use --finetune 0")
    settings = {
        "augment": bool(augment),
        "control": control,
        "gallery_expansion": expansion.to_dict(),
        "querybank": querybank.to_dict(),
        "bridge": bridge.to_dict(),
    }
    _check_resume_extras(Path(out), settings, restart)
    archive = open_scene_captions(captions, images)
    cache_dir = Path(cache_dir) if cache_dir else default_cache()
    enc = Encoders(config.encoder, config.text_encoder, config.device)
    if config.text_finetune:
        enc.text.check_top(config.text_finetune)  # before minutes of image features
    feats = {
        s: scene_split_features(archive, s, enc, cache_dir, progress, images=not config.finetune)
        for s in ("train", "val")
    }
    train_f, tail = apply_control(feats["train"], control, config.seed), None
    if config.finetune:
        tail = _scene_tail(archive, config, cache_dir, progress, augment)
        image_dim, token_dim, n_tokens = tail.shapes()
    else:
        assert train_f.globals_ is not None  # frozen: the split's image globals were computed
        image_dim = token_dim = train_f.globals_.shape[-1]
        n_tokens = 1
    texts = _tuned_text(enc, feats, config) if config.text_finetune else None
    # the querybank: the distinct training captions as the text side sees them now (rsir.text.querybank)
    rows = distinct_rows(feats["train"].captions)
    bank_text = partial(texts.encode_train, rows) if texts is not None else (lambda: feats["train"].text[rows])
    carries = carries_of(feats["train"].captions, feats["train"].caption_pair, rows)
    train_globals = tail.train_globals if tail is not None else (lambda: train_f.globals_)
    bank = _Bank(bank_text, train_globals, carries)
    model = new_model(config, enc, (image_dim, token_dim, n_tokens), train_f.text.shape[-1], fusion=FUSION)
    extra = {
        "dataset": {
            "kind": archive.kind,
            "captions": str(Path(captions).resolve()),
            "images": str(Path(images).resolve()),
            "train_images": len(train_f.pairs),
            "val_images": len(feats["val"].pairs),
        },
        "finetuned_blocks": config.finetune,
        "finetuned_text_layers": config.text_finetune,
        **settings,
    }
    return train_itsr(
        model, train_f, feats["val"], config, out, extra, progress=progress, restart=restart, images=tail, texts=texts,
        evaluate=partial(_validate, expansion=expansion, querybank=querybank, bridge=bridge, bank=bank),
        save_best=partial(_save_best, querybank=querybank, bridge=bridge, bank=bank),
    )  # fmt: skip


def _check_resume_extras(out: Path, settings: dict, restart: bool) -> None:
    """A run continues only with its own --augment, control and gallery expansion (the shared resume check
    knows the rest)."""
    import json

    manifest = out / "manifest.json"
    if restart or not (out / "last.pt").is_file() or not manifest.is_file():
        return
    saved = json.loads(manifest.read_text())
    defaults = {  # of older runs
        "augment": False,
        "gallery_expansion": OFF.to_dict(),
        "querybank": QB_OFF.to_dict(),
        "bridge": BRIDGE_OFF.to_dict(),
    }
    for key, now in settings.items():
        before = saved.get(key, defaults.get(key))
        if before != now:
            raise ValueError(f"{out} was trained with {key}={before}; use another --out, or --restart")


def _scene_tail(archive, config: ITSRTrainConfig, cache_dir: Path, progress: bool, augment: bool):
    """A fresh copy of the encoder (the cached one stays pretrained) whose last blocks will learn."""
    from rsir.models.encoders import load_encoder
    from rsir.text.tail import SceneTail

    encoder = load_encoder(config.encoder, device=config.device)
    maps = {
        s: scene_trunk_maps(archive.split(s).pairs, encoder, config.finetune, cache_dir, s, progress)
        for s in ("train", "val")
    }
    return SceneTail(encoder, config.finetune, maps["train"], maps["val"], config.device, augment, config.seed)


def _tuned_text(enc: Encoders, feats: dict, config: ITSRTrainConfig):
    """The text encoder's top layers, learning over the cached lower layers' states of the train/val captions."""
    from rsir.train.text_finetune import TunedText

    return TunedText(enc.text, config.text_finetune, feats["train"].captions, feats["val"].captions, config.device)


def open_model(ckpt: str | Path, device: str = "cpu") -> tuple[ITSRModel, dict, Encoders]:
    """(model, manifest, encoders) of a checkpoint; a fine-tuned image encoder is loaded from ``encoder.pt``,
    fine-tuned text layers from ``text_encoder.pt`` (every text query then goes through them)."""
    from rsir.models.heads import ENCODER_WEIGHTS
    from rsir.models.text import TEXT_WEIGHTS

    model, manifest = load_checkpoint(ckpt, device)
    if manifest["config"]["fusion"] != FUSION:
        raise ValueError(f"{ckpt} is a bitemporal text-ITSR model ({manifest['config']['fusion']}): use `rsir itsr`")
    tuned, text = Path(ckpt) / ENCODER_WEIGHTS, Path(ckpt) / TEXT_WEIGHTS
    if manifest.get("finetuned_text_layers") and not text.is_file():
        raise FileNotFoundError(f"{ckpt} was trained with fine-tuned text layers but has no {TEXT_WEIGHTS}")
    return (
        model,
        manifest,
        checked_encoders(
            manifest, device, tuned if tuned.is_file() else None, text_weights=text if text.is_file() else None
        ),
    )


class _Bank:
    """The training set in the shared space as the model is now: its distinct captions (the querybank of
    :mod:`rsir.text.querybank`) and, for the bridge (:mod:`rsir.text.bridge`), its images; computed by
    validation, reused by the best-checkpoint save that follows it."""

    def __init__(self, bank_text, train_globals=None, carries: np.ndarray | None = None) -> None:
        self.bank_text, self.train_globals, self.carries = bank_text, train_globals, carries
        self.last: np.ndarray | None = None
        self.last_memory: Memory | None = None

    def embed(self, model: ITSRModel) -> np.ndarray:
        import torch

        model.eval()
        device = next(model.parameters()).device
        text = torch.from_numpy(np.ascontiguousarray(self.bank_text())).to(device)
        with torch.inference_mode():
            parts = [model.encode_text(text[s : s + 4096]).float().cpu() for s in range(0, len(text), 4096)]
        bank = torch.cat(parts).numpy()
        self.last = bank
        return bank

    def memory(self, model: ITSRModel) -> Memory:
        """The bridge's memory: the bank (just embedded) and the training images through the model as it is now."""
        import torch

        assert self.train_globals is not None and self.carries is not None
        device = next(model.parameters()).device
        glob = torch.from_numpy(np.ascontiguousarray(self.train_globals(), dtype=np.float32))  # [T, 2, D]
        with torch.inference_mode():
            images = torch.cat([model.encode_pairs(g.to(device), None).float().cpu() for g in glob.split(512)])
        text = self.last if self.last is not None else self.embed(model)
        self.last_memory = Memory(text, images.numpy(), self.carries)
        return self.last_memory


def _validate(
    model: ITSRModel, feats, device: str, expansion: Expansion, querybank: QueryBank, bridge: Bridge, bank: _Bank
) -> dict:
    """Training's validation: the split's scores as `rsir text eval` computes them (expansion, querybank
    normalisation and bridge included)."""
    image_emb, text_emb = embed(model, feats, device)
    gallery = expand_gallery(image_emb, expansion)
    bank.last = bank.last_memory = None
    offsets = gallery_offsets(bank.embed(model), gallery, querybank.beta) if querybank.active else None
    over = GalleryBridge(bridge, bank.memory(model), image_emb) if bridge.active else None
    return scene_scores(image_emb, text_emb, feats.caption_pair, feats.captions, gallery, offsets, over)


def _save_best(
    out: Path, model: ITSRModel, epoch: int, val: dict, extra: dict, querybank: QueryBank, bridge: Bridge, bank: _Bank
):
    # before the manifest: a checkpoint with a manifest is complete; validation's bank and memory, just computed
    if querybank.active:
        save_bank(out, bank.last if bank.last is not None else bank.embed(model))
    if bridge.active:
        (bank.last_memory or bank.memory(model)).save(out)
    save_best_checkpoint(out, model, epoch, val, extra)


def score_matrices(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    gallery_emb: np.ndarray | None = None,
    offsets: np.ndarray | None = None,
    bridge: GalleryBridge | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(image queries' caption x image scores, text queries' caption x image scores), both [M, N].

    ``gallery_emb``: the images as a text query's gallery sees them (expanded, :mod:`rsir.text.expansion`);
    image queries always use ``image_emb`` itself. ``offsets`` [N]: subtracted from every text query's scores
    (querybank normalisation, :mod:`rsir.text.querybank`). ``bridge``: the training-memory bridge over this
    gallery (:mod:`rsir.text.bridge`), added to both.
    """
    plain = text_emb @ image_emb.T
    t2i = text_query_scores(text_emb, image_emb if gallery_emb is None else gallery_emb, offsets, bridge)
    return (plain, t2i) if bridge is None else (plain + bridge.i2t(text_emb), t2i)


def text_query_scores(
    text_emb: np.ndarray,
    gallery_emb: np.ndarray,
    offsets: np.ndarray | None = None,
    bridge: GalleryBridge | None = None,
) -> np.ndarray:
    """[M, N] text queries' scores over a gallery: cosine, less the querybank ``offsets``, plus the ``bridge``
    (eval and the search service score alike through this)."""
    scores = text_emb @ gallery_emb.T
    if offsets is not None:
        scores = scores - offsets[None, :]
    return scores if bridge is None else scores + bridge.t2i(text_emb)


def scene_scores(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    caption_image: np.ndarray,
    captions: list[str],
    gallery_emb: np.ndarray | None = None,
    offsets: np.ndarray | None = None,
    bridge: GalleryBridge | None = None,
) -> dict:
    """{"t2i", "i2t", "mR", "gallery_size", "queries", "t2i_dup_aware"}: the published protocol + dup-aware t2i,
    of the scores of :func:`score_matrices`."""
    i2t_sim, t2i_sim = score_matrices(image_emb, text_emb, gallery_emb, offsets, bridge)
    return similarity_scores(i2t_sim, caption_image, captions, t2i_sim)


def similarity_scores(
    sim: np.ndarray, caption_image: np.ndarray, captions: list[str], t2i_sim: np.ndarray | None = None
) -> dict:
    """:func:`scene_scores` from a caption x image similarity matrix [M, N] (e.g. an ensemble's mean);
    ``t2i_sim``: the text -> image ranking's own matrix (an expanded gallery), else ``sim``."""
    n = sim.shape[1]
    own = caption_image[:, None] == np.arange(n)[None, :]
    t2i_sim = sim if t2i_sim is None else t2i_sim
    t2i = recall_at_k(t2i_sim, own)
    i2t = recall_at_k(sim.T, own.T)
    keys = np.unique([c.strip().lower() for c in captions], return_inverse=True)[1]
    carries = np.zeros((keys.max() + 1, n), dtype=bool)  # [distinct caption, image]: the image carries it
    carries[keys, caption_image] = True
    return {
        "t2i": t2i,
        "i2t": i2t,
        "mR": mean_recall(t2i, i2t),
        "gallery_size": int(n),
        "queries": int(sim.shape[0]),
        "t2i_dup_aware": recall_at_k(t2i_sim, carries[keys]),
    }


def embed(model: ITSRModel, feats, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    from rsir.itsr.evaluate import embed_split

    return embed_split(model, feats, device)


def split_features_for(ckpt_enc: Encoders, captions, images, split: str, cache_dir: Path | None, progress: bool):
    archive = open_scene_captions(captions, images)
    return scene_split_features(archive, split, ckpt_enc, Path(cache_dir) if cache_dir else default_cache(), progress)


def evaluate_checkpoint(
    ckpt: str | Path,
    captions: str | Path,
    images: str | Path,
    split: str = "test",
    device: str = "cpu",
    cache_dir: Path | None = None,
    progress: bool = True,
    control: str | None = None,
    control_seed: int = 0,
) -> dict:
    """Scores of a checkpoint on a split's full gallery (see the module doc for the protocol);
    ``control``: score under a control of :mod:`rsir.text.controls` (``shuffle-images`` seeded by
    ``control_seed``), recorded in the result."""
    check_control(control)
    model, manifest, enc = open_model(ckpt, device)
    feats = split_features_for(enc, captions, images, split, cache_dir, progress)
    image_emb, text_emb = embed(model, apply_control(feats, control, control_seed), device)
    gallery = expand_gallery(image_emb, expansion_of(manifest))  # text queries' gallery; image queries stay
    offsets = offsets_for(ckpt, manifest, gallery)
    bridge = gallery_bridge_for(ckpt, manifest, image_emb)
    scores = scene_scores(image_emb, text_emb, feats.caption_pair, feats.captions, gallery, offsets, bridge)
    return {**scores, "control": control} if control else scores
