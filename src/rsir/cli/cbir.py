"""CBIR commands: `rsir index`, `rsir search`, `rsir eval cbir`, `rsir train cbir`, `rsir demo`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from rsir.cli.common import emit, open_archive_or_exit, table, user_errors

Encoder = Annotated[str | None, typer.Option(help="Encoder name (default efficientnet-lite0; timm:/hf:/open_clip:...)")]
Head = Annotated[Path | None, typer.Option(help="Head checkpoint folder from `rsir train cbir`.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
Strict = Annotated[bool, typer.Option(help="Unreadable files are fatal instead of skipped and reported.")]
Split = Annotated[str, typer.Option(help="`loo` (leave-one-out) or `holdout:FRACTION` (stratified test part).")]

eval_app = typer.Typer(no_args_is_help=True, help="Evaluate retrieval.")
train_app = typer.Typer(no_args_is_help=True, help="Train metric-learning heads.")


def index(
    archive: Path,
    out: Annotated[Path, typer.Option(help="Index folder to write.")],
    encoder: Encoder = None,
    head: Head = None,
    index_type: Annotated[str, typer.Option(help="flat (exact), ivfpq, hnsw, or auto (flat below 100k).")] = "flat",
    nlist: Annotated[int | None, typer.Option(help="IVF-PQ lists (default ~sqrt(N)).")] = None,
    pq_m: Annotated[int | None, typer.Option(help="IVF-PQ bytes per vector (must divide the dim).")] = None,
    nprobe: Annotated[int, typer.Option(help="IVF-PQ lists visited per query (recall vs speed).")] = 32,
    rerank: Annotated[int, typer.Option(help="IVF-PQ: re-rank rerank*k candidates exactly (0 = off).")] = 10,
    hnsw_m: Annotated[int, typer.Option(help="HNSW graph degree (memory vs recall).")] = 32,
    ef_search: Annotated[int, typer.Option(help="HNSW search beam (recall vs speed).")] = 128,
    engine: Annotated[
        str, typer.Option(help="local (this machine) or ray (Ray Data, from the optional ray extra).")
    ] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster address (default: start a local Ray).")] = None,
    batch_size: int = 32,
    workers: int = 1,
    strict: Strict = False,
    as_json: Json = False,
) -> None:
    """Embed an archive and write a FAISS index plus its manifest (resumable: a rerun continues)."""
    from rsir.cbir.indexing import index_archive
    from rsir.cbir.space import Space
    from rsir.index.faiss_index import IndexParams

    with user_errors(), _engine_errors():
        arch = open_archive_or_exit(archive, strict)
        params = IndexParams(
            index_type=index_type,
            nlist=nlist,
            pq_m=pq_m,
            nprobe=nprobe,
            rerank=rerank,
            hnsw_m=hnsw_m,
            ef_search=ef_search,
        )
        report = index_archive(
            arch,
            out,
            Space.load(encoder, head),
            params,
            engine=engine,
            ray_options=_ray_options(engine, address),
            batch_size=batch_size,
            workers=workers,
            strict=strict,
        )
    emit(asdict(report), as_json, lambda r: table([r]))


def _ray_options(engine: str, address: str | None):
    if engine != "ray":
        if address:
            raise ValueError("--address is for --engine ray")
        return None
    from rsir.embed.ray_engine import RayOptions

    return RayOptions(address=address)


@contextmanager
def _engine_errors() -> Iterator[None]:
    """A missing Ray extra or an unreachable cluster is a user error (one line, exit 2), not a traceback."""
    from rsir.embed.ray_engine import EngineUnavailable

    try:
        yield
    except EngineUnavailable as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None


def search(
    index_dir: Path,
    image: Annotated[Path | None, typer.Option(help="Query image file.")] = None,
    item_id: Annotated[str | None, typer.Option("--id", help="Query by an indexed item's id.")] = None,
    text: Annotated[str | None, typer.Option(help="Query by a sentence (needs --text-model).")] = None,
    text_model: Annotated[
        Path | None, typer.Option(help="Text <-> scene checkpoint for --text (`rsir text train`).")
    ] = None,
    k: Annotated[int, typer.Option("-k", min=1, max=10_000)] = 10,
    grid: Annotated[Path | None, typer.Option(help="Write a result grid (.png or .html).")] = None,
    as_json: Json = False,
) -> None:
    """Query an index by image, by id or by words (--text with --text-model); print ranked ids, paths and scores."""
    from rsir.cbir import indexing
    from rsir.index.faiss_index import SearchIndex
    from rsir.viz.grid import Cell, write_grid

    with user_errors():
        if (text is None) != (text_model is None):
            raise ValueError("--text and --text-model go together")
        if text is not None and (image is not None or item_id is not None):
            raise ValueError("give one query: --image, --id or --text")
        idx = SearchIndex(index_dir)
        if text is not None:
            from rsir.text.search import SceneTextSearch

            hits = SceneTextSearch(idx, text_model).search(text, k)
        else:
            hits = indexing.search(idx, indexing.query_vector(idx, image=image, item_id=item_id), k, skip_id=item_id)
        if grid:
            if text is not None:  # a blank tile carries the sentence
                import numpy as np

                query = Cell([np.full((8, 8, 3), 255, np.uint8)], f"query:\n{text}")
            else:
                query = Cell([image or Path(idx.manifest.paths[idx.row_of(item_id)])], "query")
            cells = [Cell([Path(h.path)], f"{h.rank}. {h.id}\n{h.score:.3f}") for h in hits]
            write_grid(query, cells, grid)
    rows = [asdict(h) for h in hits]
    emit(
        {"query": str(text or image or item_id), "hits": rows, "grid": str(grid) if grid else None},
        as_json,
        lambda r: table(r["hits"], ["rank", "id", "score", "labels", "path"]),
    )


@eval_app.command("cbir")
def eval_cbir(
    archive: Path,
    encoder: Encoder = None,
    head: Head = None,
    split: Split = "loo",
    k: Annotated[int, typer.Option(min=1)] = 20,
    seed: int = 0,
    jaccard: Annotated[float | None, typer.Option(help="Multi-label: relevant when Jaccard >= this.")] = None,
    strict: Strict = False,
    as_json: Json = False,
) -> None:
    """map@k, map@k_hits, p@k, R-precision and mAP of an encoder (+ head) on a labelled archive."""
    from rsir.cbir.evaluation import evaluate_vectors, labels_of, split_of
    from rsir.cbir.space import Space

    with user_errors():
        arch = open_archive_or_exit(archive, strict)
        if not arch.is_labelled:
            raise ValueError(f"{archive} has no labels; evaluation needs a labelled archive")
        emb = Space.load(encoder, head).embed(arch, strict=strict)
        labels = labels_of(arch, emb.ids)
        parts = split_of(labels, split, seed)
        metrics = evaluate_vectors(emb.vectors, labels, parts.query, parts.gallery, k=k, loo=parts.loo, jaccard=jaccard)
    emit(metrics, as_json, lambda m: table([m]))


LOSS_HELP = (
    "labels: multisimilarity (default) / contrastive / triplet; "
    "pairs: balanced (default: ANNEAL's geometry-preserving objective) / contrastive / triplet"
)


@train_app.command("cbir")
def train_cbir(
    archive: Path,
    out: Annotated[Path, typer.Option(help="Head checkpoint folder to write.")],
    encoder: Encoder = None,
    split: Split = "holdout:0.2",
    seed: int = 0,
    pairs: Annotated[Path | None, typer.Option(help="CSV id_a,id_b,similar: learn from pairs, not labels.")] = None,
    loss: Annotated[str | None, typer.Option(help=LOSS_HELP)] = None,
    epochs: int = 40,
    finetune: Annotated[int, typer.Option(help="Also fine-tune the encoder's last N blocks (0 = frozen).")] = 0,
    strict: Strict = False,
    as_json: Json = False,
) -> None:
    """Train a projection head on frozen features (or fine-tune), on the train side of --split only."""
    from rsir.cbir.training import train_cbir as run
    from rsir.train.metric_head import TrainConfig

    with user_errors():
        arch = open_archive_or_exit(archive, strict)
        default_loss = "balanced" if pairs else "multisimilarity"
        config = TrainConfig(loss=loss or default_loss, epochs=epochs, seed=seed)
        report = run(
            arch,
            out,
            encoder=encoder,
            split=split,
            seed=seed,
            pairs_file=pairs,
            config=config,
            finetune_blocks=finetune,
        )
    emit(report, as_json)


def demo(
    out: Annotated[Path, typer.Option(help="Where the demo writes its index, head and grids.")] = Path("rsir-demo"),
    as_json: Json = False,
) -> None:
    """Index the embedded UC Merced sample, query it, evaluate, train a head, and write result grids."""
    from rsir.cbir.demo import run_demo

    with user_errors():
        report = run_demo(out)
    emit(report, as_json, lambda r: r["text"])


def register(app: typer.Typer) -> None:
    app.command()(index)
    app.command()(search)
    app.command()(demo)
    app.add_typer(eval_app, name="eval")
    app.add_typer(train_app, name="train")
