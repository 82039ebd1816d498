"""`rsir itsr ...`: text <-> bitemporal image retrieval (GFF / TFF fusion), see docs/itsr.md."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from rsir.cli import validate
from rsir.cli.common import emit, training_summary
from rsir.cli.runtime import Runtime

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)

FUSION_HELP = (
    "gff-concat|gff-diff|gff-absdiff|gff-sum|gff-product|gff-concat+diff|tff|gate|gate-tff|after|before"
    " (gate variants: gate-1, gate-4, gate-mag, gate-nodiff, gate-sharp8, gate-sharp8-mlp, gate-sharp8-abs,"
    " gate-sharp16, gate-sharp8-top16; gate-tff-32)"
)
Device = Annotated[str, typer.Option(help="torch device: cpu, cuda, cuda:1, mps", callback=validate.device)]
CacheDir = Annotated[Path | None, typer.Option(help="feature cache (default DATASET/.rsir_cache, else next to CKPT)")]


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@app.command()
def synth(
    archive: Annotated[Path, typer.Argument(help="scene archive, one folder per class (e.g. UC Merced)")],
    out: Annotated[Path, typer.Option("--out", help="output folder (LEVIR-CC layout)")],
    pairs: Annotated[int, typer.Option(help="number of pairs (70/10/20 train/val/test)")] = 2500,
    seed: int = 0,
    overwrite: Annotated[bool, typer.Option(help="clear a previous set in --out first")] = False,
    no_change: Annotated[
        float | None, typer.Option(help="share of unchanged pairs (default 0.5; version 1: 0.25, >= 0.2)")
    ] = None,
    version: Annotated[int, typer.Option(help="2: irregular changes, hard to shortcut; 1: the easy grid set")] = 2,
    masks: Annotated[Path | None, typer.Option(help="version 2: folder of real change masks (**/label/*.png)")] = None,
    siblings: Annotated[
        float,
        typer.Option(
            help="version 2: share of the train split's changed pairs made in groups of 2-3 from the same before "
            "scene with different changes (hard negatives for `itsr train --sibling-batches`)"
        ),
    ] = 0.0,
    workers: Annotated[
        int, typer.Option(help="version 2: threads that render the images (same files for any number)")
    ] = 1,
    json_out: Annotated[bool, typer.Option("--json", help="print the manifest as JSON")] = False,
) -> None:
    """Make a SEMI-SYNTHETIC change-caption set: real scenes, synthetic changes, template captions."""
    from rsir import api

    try:
        manifest = api.make_change_set(
            archive, out, pairs=pairs, seed=seed, no_change_fraction=no_change, progress=not json_out,
            overwrite=overwrite, version=version, masks=masks, siblings=siblings, workers=workers,
        )  # fmt: skip
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    if json_out:
        typer.echo(json.dumps(manifest))
        return
    typer.echo(
        f"wrote {sum(manifest['pairs'].values())} pairs to {out}: {manifest['pairs']} "
        f"(changed {manifest['changed']}); scenes {manifest['scenes']}"
    )
    typer.echo(
        f"caption duplicate rate across pairs: {100 * manifest['duplicate_rate']:.2f}% "
        f"({manifest['distinct_captions']} distinct captions)"
    )


@app.command()
def info(dataset: Path) -> None:
    """Summarise a LEVIR-CC / Dubai-CC style folder (pairs per split, changed, skipped captions)."""
    from rsir import api
    from rsir.data.changecap import ChangeCaptionError

    try:
        typer.echo(api.open_change_set(dataset).summary())
    except ChangeCaptionError as exc:
        _fail(str(exc))


@app.command()
def train(
    dataset: Annotated[Path, typer.Argument(help="LEVIR-CC or Dubai-CC layout folder")],
    out: Annotated[Path, typer.Option("--out", help="checkpoint folder (manifest.json + model.pt)")],
    fusion: Annotated[str, typer.Option(help=FUSION_HELP)] = "gate-tff",
    epochs: int = 30,
    seed: int = 0,
    dim: Annotated[int, typer.Option(help="shared space dimension")] = 256,
    batch_size: int = 128,
    lr: float = 5e-4,
    encoder: Annotated[str, typer.Option(help="image encoder (rsir registry name)")] = "efficientnet-lite0",
    text_encoder: Annotated[str, typer.Option(help="HF text model, or the offline default")] = "all-minilm-l6-v2",
    tff_dim: Annotated[int | None, typer.Option(help="TFF width (default 128)")] = None,
    tff_layers: Annotated[int | None, typer.Option(help="TFF layers (default 2)")] = None,
    tff_heads: Annotated[int | None, typer.Option(help="TFF heads (default 4)")] = None,
    tff_pool: Annotated[str | None, typer.Option(help="TFF output: cls (default) | mean")] = None,
    tff_readout: Annotated[int | None, typer.Option(help="channels per grid cell read out (0 = off)")] = None,
    tff_diff: Annotated[bool, typer.Option(help="add the after-before token stream")] = True,
    tff_skip: Annotated[bool, typer.Option(help="also give the head GFF concat+diff of the globals")] = True,
    patience: Annotated[int | None, typer.Option(help="stop after N epochs without val gain")] = None,
    finetune: Annotated[
        int, typer.Option(help="also train the image encoder's last N blocks (0: frozen encoders, cached features)")
    ] = 0,
    finetune_lr: Annotated[float, typer.Option(help="learning rate of the fine-tuned blocks")] = 1e-4,
    token_stage: Annotated[
        int | None,
        typer.Option(
            help="image tokens from the map after all but the encoder's last N blocks (5: 14x14x112 on "
            "EfficientNet-Lite0); 0: the final tokens; default: 5 for gate-tff on an encoder that can be split "
            "and without --finetune, else 0",
            min=0,
        ),
    ] = None,
    sibling_batches: Annotated[
        bool,
        typer.Option(
            help="put pairs that share a before scene (synth sets record it) in one batch: each is the other's "
            "hard negative, told apart only by the change"
        ),
    ] = False,
    changed_weight: Annotated[
        float,
        typer.Option(help="loss weight of a changed pair against an unchanged pair's 1 (needs changeflag)", min=0.01),
    ] = 1.0,
    restart: Annotated[bool, typer.Option(help="ignore last.pt and train from scratch")] = False,
    device: Device = "cpu",
    threads: Annotated[int | None, typer.Option(help="torch CPU threads (default: torch's choice)")] = None,
    runtime: Runtime = "auto",
    cache_dir: CacheDir = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Train on cached features of frozen encoders (or fine-tune the image encoder's last blocks with
    --finetune N); keeps the best-on-validation epoch; resumable."""
    from rsir import api
    from rsir.data.changecap import ChangeCaptionError
    from rsir.models.encoders import EncoderUnavailable
    from rsir.models.fusion import TFFConfig, build_fusion

    try:
        validate.encoder(encoder)  # names, extras and (offline) the hub checked before any feature is computed
        validate.text_encoder(text_encoder)
        build_fusion(fusion, 8, 8, 4)
        given: dict[str, Any] = {
            "d_model": tff_dim,
            "layers": tff_layers,
            "heads": tff_heads,
            "pool": tff_pool,
            "cell_readout": tff_readout,
            "diff_stream": tff_diff,
            "global_skip": tff_skip,
        }
        tff = TFFConfig(**{k: v for k, v in given.items() if v is not None}).to_dict()
        build_fusion("tff", 8, 8, 4, TFFConfig(**tff))
    except (ValueError, EncoderUnavailable) as exc:
        _fail(str(exc))
    config = dict(
        fusion=fusion,
        epochs=epochs,
        seed=seed,
        dim=dim,
        batch_size=batch_size,
        lr=lr,
        encoder=encoder,
        text_encoder=text_encoder,
        tff=tff,
        patience=patience,
        finetune=finetune,
        finetune_lr=finetune_lr,
        token_stage=token_stage,
        sibling_batches=sibling_batches,
        changed_weight=changed_weight,
        device=device,
        runtime=runtime,
    )
    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        summary = api.train_itsr(
            dataset, out, cache_dir=cache_dir, progress=not json_out, restart=restart, **config
        ).report
    except (ChangeCaptionError, ValueError, EncoderUnavailable) as exc:
        _fail(str(exc))
    if not validate.main_process():  # under torchrun: rank 0 reports
        return
    emit(summary, json_out, lambda s: training_summary(s, out))


def _print_scores(scores: dict) -> None:
    shuffled = "shuffled_before_seed" in scores
    typer.echo(f"gallery: {scores['gallery_size']} pairs" + (" (before images SHUFFLED: control)" if shuffled else ""))
    titles = {"changed": "changed pairs (headline)", "unchanged": "unchanged pairs"}
    blocks = [(titles[n], scores[n]) for n in titles if n in scores] + [("all queries", scores)]
    for title, block in blocks:
        typer.echo(title + (f" ({block['pairs']})" if "pairs" in block else ""))
        for name in ("t2i", "t2i_dup", "i2t"):
            if name not in block:
                continue
            r = block[name]
            typer.echo(f"  {name}: R@1 {r['r@1']:6.2f}  R@5 {r['r@5']:6.2f}  R@10 {r['r@10']:6.2f}")
        typer.echo(f"  mR: {block['mR']:.2f}")


@app.command("eval")
def evaluate(
    ckpt: Path,
    dataset: Path,
    split: str = "test",
    device: Device = "cpu",
    cache_dir: CacheDir = None,
    shuffle_before: Annotated[
        bool, typer.Option(help="control: give each pair another pair's before image (seeded by --shuffle-seed)")
    ] = False,
    shuffle_seed: Annotated[int, typer.Option(help="seed of the --shuffle-before permutation")] = 0,
    runtime: Runtime = "auto",
    json_out: Annotated[
        bool, typer.Option("--json", help="print {t2i, i2t, mR, t2i_dup, gallery_size, changed, unchanged}")
    ] = False,
) -> None:
    """R@1/5/10 text->pair and pair->text plus mR over the FULL split gallery; also for the queries about
    changed pairs (the headline) and unchanged pairs, and duplicate-aware text->pair (t2i_dup)."""
    from rsir import api
    from rsir.data.changecap import ChangeCaptionError
    from rsir.models.encoders import EncoderUnavailable

    try:
        scores = api.evaluate_itsr(
            ckpt, dataset, split, device=device, cache_dir=cache_dir, detail=True, progress=not json_out,
            shuffle_seed=shuffle_seed if shuffle_before else None, runtime=runtime,
        ).report  # fmt: skip
    except (ChangeCaptionError, FileNotFoundError, ValueError, EncoderUnavailable) as exc:
        _fail(str(exc))
    if json_out:
        typer.echo(json.dumps(scores))
    else:
        _print_scores(scores)


@app.command()
def search(
    ckpt: Path,
    dataset: Path,
    text: Annotated[str | None, typer.Option(help="sentence -> ranked before/after pairs")] = None,
    pair: Annotated[tuple[Path, Path] | None, typer.Option(help="BEFORE AFTER images -> ranked captions")] = None,
    k: Annotated[int, typer.Option("-k", "--k", help="results")] = 10,
    split: Annotated[str, typer.Option(help="gallery split")] = "test",
    grid: Annotated[Path | None, typer.Option(help="PNG of the ranked pairs (text queries)")] = None,
    device: Device = "cpu",
    cache_dir: CacheDir = None,
    runtime: Runtime = "auto",
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Search the split's pairs with --text, or its captions with --pair BEFORE AFTER."""
    from rsir import api
    from rsir.data.changecap import ChangeCaptionError
    from rsir.data.items import ImageError
    from rsir.models.encoders import EncoderUnavailable

    if (text is None) == (pair is None):
        _fail("give exactly one of --text or --pair BEFORE AFTER")
    try:
        model = api.open_itsr(
            ckpt, dataset, split, device=device, cache_dir=cache_dir, runtime=runtime, progress=not json_out
        )
        if text is not None:
            hits: list[Any] = model.search_text(text, k)
        else:
            before, after = cast("tuple[Path, Path]", pair)  # exactly one of --text / --pair (checked above)
            hits = model.search_pair(before, after, k)
    except (ChangeCaptionError, FileNotFoundError, ValueError, ImageError, EncoderUnavailable) as exc:
        _fail(str(exc))
    results = [asdict(h) for h in hits]
    if grid is not None and text is not None:
        api.ItsrModel.write_grid(text, hits, grid)
    if json_out:
        typer.echo(json.dumps({"query": text or [str(p) for p in pair or ()], "results": results}))
        return
    for r in results:
        if text is not None:
            typer.echo(f"{r['rank']:>3}  {r['score']:.3f}  {r['id']}  {r['captions'][0]}")
        else:
            typer.echo(f"{r['rank']:>3}  {r['score']:.3f}  {r['caption']}  ({r['pair']})")
    if grid is not None and text is not None:
        typer.echo(f"grid: {grid}")
