"""`rsir text ...`: text <-> scene retrieval trained on single-date caption datasets (UCM-Captions, RSICD...)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rsir.cli.common import emit, training_summary

app = typer.Typer(no_args_is_help=True)

Captions = Annotated[Path, typer.Argument(help="caption JSON, Karpathy layout (images[].filename/split/sentences)")]
Images = Annotated[Path, typer.Option("--images", help="image folder (UCM: the UC Merced scene archive)")]
Device = Annotated[str, typer.Option(help="torch device: cpu, cuda, cuda:1, mps")]
CacheDir = Annotated[Path | None, typer.Option(help="feature cache (default $RSIR_CACHE or ~/.cache/rsir)")]
DEFAULT_K, DEFAULT_W = 3, 0.3  # rsir.text.pipeline.DEFAULT_EXPANSION (a test keeps them equal; imports stay light)
DEFAULT_QB = 10.0  # rsir.text.pipeline.DEFAULT_QUERYBANK.beta (likewise)
DEFAULT_BK = 0  # rsir.text.pipeline.DEFAULT_BRIDGE.k: the training-memory bridge is off (likewise)
USER_ERRORS: tuple[type[Exception], ...] = (ValueError, FileNotFoundError)


def _fail(message: object) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _errors() -> tuple[type[Exception], ...]:
    from rsir.data.items import ImageError
    from rsir.models.encoders import EncoderUnavailable

    return (*USER_ERRORS, ImageError, EncoderUnavailable)


@app.command()
def info(captions: Captions, images: Images) -> None:
    """Summarise a caption dataset over its image folder (images per split, skipped entries)."""
    from rsir import api

    try:
        typer.echo(api.open_caption_set(captions, images).summary())
    except _errors() as exc:
        _fail(exc)


@app.command()
def train(
    captions: Captions,
    images: Images,
    out: Annotated[Path, typer.Option("--out", help="checkpoint folder (manifest.json + model.pt)")],
    seed: int = 0,
    epochs: Annotated[int | None, typer.Option(min=1, help="default: 10 when fine-tuning, 30 frozen")] = None,
    dim: Annotated[int, typer.Option(help="shared space dimension")] = 256,
    batch_size: int = 128,
    lr: float = 5e-4,
    encoder: Annotated[str, typer.Option(help="image encoder (rsir registry name)")] = "efficientnet-lite0",
    text_encoder: Annotated[str, typer.Option(help="HF text model, or the offline default")] = "all-minilm-l6-v2",
    finetune: Annotated[int, typer.Option(min=0, help="also train the image encoder's last N blocks (0: frozen)")] = 1,
    finetune_lr: Annotated[float, typer.Option(help="learning rate of the fine-tuned blocks")] = 1e-4,
    text_finetune: Annotated[
        int, typer.Option(min=0, help="also train the text encoder's last N transformer layers (0: frozen)")
    ] = 0,
    text_finetune_lr: Annotated[float, typer.Option(help="learning rate of the fine-tuned text layers")] = 2e-5,
    augment: Annotated[
        bool | None,
        typer.Option("--augment/--no-augment", help="turn/flip cached trunk maps (default: when fine-tuning)"),
    ] = None,
    patience: Annotated[int | None, typer.Option(help="stop after N epochs without val gain")] = None,
    control: Annotated[
        str | None, typer.Option(help="control: shuffle-images trains on deranged train images (must score ~chance)")
    ] = None,
    expand_k: Annotated[
        int, typer.Option(min=0, help="gallery expansion: each scene's k nearest scenes join its vector (0: off)")
    ] = DEFAULT_K,
    expand_weight: Annotated[
        float, typer.Option(min=0.0, help="gallery expansion: weight of each neighbour")
    ] = DEFAULT_W,
    querybank_beta: Annotated[
        float, typer.Option(min=0.0, help="text->scene scores normalised by the training captions, beta (0: off)")
    ] = DEFAULT_QB,
    bridge_k: Annotated[
        int,
        typer.Option(min=0, help="training-memory bridge: training neighbours per scene (0: off; 10 measured)"),
    ] = DEFAULT_BK,
    bridge_weight: Annotated[
        float | None, typer.Option(min=0.0, help="training-memory bridge: its weight in text->scene scores (8)")
    ] = None,
    bridge_i2t_weight: Annotated[
        float | None, typer.Option(min=0.0, help="training-memory bridge: its weight in scene->text scores (0.2)")
    ] = None,
    restart: Annotated[bool, typer.Option(help="ignore last.pt and train from scratch")] = False,
    device: Device = "cpu",
    cache_dir: CacheDir = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Train a text <-> scene model (best epoch on val kept; resumable) on the text-ITSR machinery."""
    from rsir import api

    try:
        summary = api.train_text(
            captions, images, out, cache_dir=cache_dir, augment=augment, restart=restart, progress=not json_out,
            epochs=epochs, seed=seed, dim=dim, batch_size=batch_size, lr=lr, encoder=encoder,
            text_encoder=text_encoder, patience=patience, finetune=finetune, finetune_lr=finetune_lr, device=device,
            text_finetune=text_finetune, text_finetune_lr=text_finetune_lr,
            control=control, expand_k=expand_k, expand_weight=expand_weight, querybank_beta=querybank_beta,
            bridge_k=bridge_k, bridge_weight=bridge_weight, bridge_i2t_weight=bridge_i2t_weight,
        ).report  # fmt: skip
    except _errors() as exc:
        _fail(exc)
    emit(summary, json_out, lambda s: training_summary(s, out))


@app.command("eval")
def evaluate(
    ckpt: Path,
    captions: Captions,
    images: Images,
    split: str = "test",
    device: Device = "cpu",
    cache_dir: CacheDir = None,
    control: Annotated[
        str | None,
        typer.Option(help="control: shuffle-images (gallery images deranged) or constant-text (one query for all)"),
    ] = None,
    control_seed: Annotated[int, typer.Option(help="seed of the shuffle-images derangement")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="print {t2i, i2t, mR, gallery_size, t2i_dup_aware}")] = False,
) -> None:
    """R@1/5/10 text->image and image->text and mR over the split's full gallery (the published protocol),
    plus duplicate-aware text->image (an image carrying an identical caption also counts)."""
    from rsir import api

    try:
        scores = api.evaluate_text(
            ckpt, captions, images, split, device=device, cache_dir=cache_dir, progress=not json_out,
            control=control, control_seed=control_seed,
        ).report  # fmt: skip
    except _errors() as exc:
        _fail(exc)
    if json_out:
        typer.echo(json.dumps(scores))
        return
    typer.echo(f"gallery: {scores['gallery_size']} images, {scores['queries']} caption queries")
    if control:
        typer.echo(f"  CONTROL {control}: a model that reads both inputs must score near chance here")
    for name in ("t2i", "i2t", "t2i_dup_aware"):
        r = scores[name]
        typer.echo(f"  {name:<14} R@1 {r['r@1']:6.2f}  R@5 {r['r@5']:6.2f}  R@10 {r['r@10']:6.2f}")
    typer.echo(f"  mR: {scores['mR']:.2f}")
