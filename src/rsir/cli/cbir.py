"""CBIR commands: `rsir index`, `rsir search`, `rsir eval cbir`, `rsir train cbir`, `rsir demo`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, cast

import typer

from rsir.cli import validate
from rsir.cli.common import emit, open_archive_or_exit, table, user_errors
from rsir.cli.runtime import Runtime
from rsir.index.store import STORE_HELP

Encoder = Annotated[str | None, typer.Option(help="Encoder name (default efficientnet-lite0; timm:/hf:/open_clip:...)")]
Head = Annotated[Path | None, typer.Option(help="Head checkpoint folder from `rsir train cbir`.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
Strict = Annotated[bool, typer.Option(help="Unreadable files are fatal instead of skipped and reported.")]
Split = Annotated[str, typer.Option(help="`loo` (leave-one-out) or `holdout:FRACTION` (stratified test part).")]

eval_app = typer.Typer(no_args_is_help=True, help="Evaluate retrieval.", rich_markup_mode=None)
train_app = typer.Typer(no_args_is_help=True, help="Train metric-learning heads.", rich_markup_mode=None)


def index(
    archive: Path,
    out: Annotated[Path, typer.Option(help="Index folder to write.")],
    encoder: Encoder = None,
    head: Head = None,
    store: Annotated[str | None, typer.Option(help="Where vectors live: " + STORE_HELP + ".")] = None,
    append: Annotated[
        bool, typer.Option("--append", help="Add the archive's new items to the existing index at --out (no rebuild).")
    ] = False,
    index_type: Annotated[
        str | None,
        typer.Option(help="flat (exact), ivfpq, hnsw, or auto (flat below 100k); milvus also ivfflat, ivfsq8."),
    ] = None,
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
    runtime: Runtime = "auto",
    strict: Strict = False,
    as_json: Json = False,
) -> None:
    """Embed an archive and write an index plus its manifest (resumable: a rerun continues); --append adds
    only the items the index lacks."""
    from rsir import api

    with user_errors(), _engine_errors():
        validate.index_options(index_type or "flat", engine, pq_m, nlist, store or "faiss")
        validate.encoder(encoder)
        if append:
            given: dict[str, object] = {"--store": store, "--index-type": index_type, "--encoder": encoder}
            given["--head"] = head
            given |= {"--nlist": nlist, "--pq-m": pq_m}
            clash = [name for name, value in given.items() if value is not None]
            if clash:
                raise ValueError(f"--append keeps the index's own settings; drop {', '.join(clash)}")
            if address and engine != "ray":
                raise ValueError("--address is for --engine ray")
            arch = open_archive_or_exit(archive, strict)
            report = api.append_to_index(
                arch, out, engine=engine, ray_address=address, batch_size=batch_size, workers=workers,
                strict=strict, progress=True,
            )  # fmt: skip
            emit(asdict(report), as_json, lambda r: table([r]))
            return
        if address and engine != "ray":
            raise ValueError("--address is for --engine ray")
        arch = open_archive_or_exit(archive, strict)
        report = api.build_index(
            arch, out, encoder=encoder, head=head, index_type=index_type or "flat", store=store or "faiss",
            runtime=runtime, engine=engine, ray_address=address, batch_size=batch_size, workers=workers,
            strict=strict, progress=True, nlist=nlist, pq_m=pq_m, nprobe=nprobe, rerank=rerank, hnsw_m=hnsw_m,
            ef_search=ef_search,
        )  # fmt: skip
    emit(asdict(report), as_json, _index_human)


def _index_human(report: dict) -> str:
    lines = [table([{k: v for k, v in report.items() if k not in ("built", "note")}]), f"built: {report['built']}"]
    return "\n".join(lines + ([f"note: {report['note']}"] if report["note"] else []))


def index_remove(
    index_dir: Path,
    ids: Annotated[list[str] | None, typer.Argument(help="Item ids to remove.")] = None,
    ids_file: Annotated[Path | None, typer.Option(help="A file of item ids, one per line.")] = None,
    as_json: Json = False,
) -> None:
    """Remove items by id from an index (FAISS or Milvus store); nothing is re-embedded."""
    from rsir import api

    with user_errors():
        wanted = list(ids or [])
        if ids_file is not None:
            wanted += [line.strip() for line in Path(ids_file).read_text().splitlines() if line.strip()]
        if not wanted:
            raise ValueError("give item ids to remove (arguments or --ids-file)")
        report = api.remove_from_index(index_dir, wanted)
    emit(report, as_json, lambda r: table([r]))


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
    offset: Annotated[int, typer.Option(min=0, help="Skip this many results (paging).")] = 0,
    label: Annotated[list[str] | None, typer.Option(help="Keep items with any of these labels (repeatable).")] = None,
    date_from: Annotated[str | None, typer.Option(help="Keep items dated on or after (YYYY-MM-DD).")] = None,
    date_to: Annotated[str | None, typer.Option(help="Keep items dated on or before (YYYY-MM-DD).")] = None,
    bbox: Annotated[str | None, typer.Option(help="'west,south,east,north': items whose footprint meets it.")] = None,
    grid: Annotated[Path | None, typer.Option(help="Write a result grid (.png or .html).")] = None,
    runtime: Runtime = "auto",
    as_json: Json = False,
) -> None:
    """Query an index by image, by id or by words (--text with --text-model), optionally filtered and paged;
    print ranked ids, paths and scores."""
    from rsir import api

    with user_errors():
        if (text is None) != (text_model is None):
            raise ValueError("--text and --text-model go together")
        if sum(q is not None for q in (image, item_id, text)) != 1:
            raise ValueError(
                "give exactly one query: --image FILE, --id ITEM_ID or --text SENTENCE (with --text-model)"
            )
        filters = _filters(label, date_from, date_to, bbox)
        idx = api.open_index(index_dir)
        if text is not None:
            page = idx.text_page(text, text_model, k, **filters, offset=offset)
        else:
            page = idx.page(image=image, item_id=item_id, runtime=runtime, k=k, **filters, offset=offset)
        total, hits = page.total, page.hits
        if grid:
            idx.write_grid(hits, grid, image=image, item_id=item_id, text=text)
    rows = [asdict(h) for h in hits]
    emit(
        {
            "query": str(text or image or item_id),
            "total": total,
            "offset": offset,
            "hits": rows,
            "grid": str(grid) if grid else None,
        },
        as_json,
        lambda r: table(r["hits"], ["rank", "id", "score", "labels", "path"]),
    )


def _filters(labels: list[str] | None, date_from: str | None, date_to: str | None, bbox: str | None) -> dict:
    """The filter options parsed for :meth:`rsir.api.Index.page` (bad values: errors naming the option)."""
    from datetime import date

    from rsir.index.filters import check_bbox

    def day(value: str | None, name: str) -> date | None:
        try:
            return date.fromisoformat(value) if value else None
        except ValueError:
            raise ValueError(f"--{name}: expected a date YYYY-MM-DD, got {value!r}") from None

    box = None
    if bbox is not None:
        try:
            box = check_bbox(cast("tuple[float, float, float, float]", tuple(float(v) for v in bbox.split(","))))
        except (TypeError, ValueError) as err:
            raise ValueError(f"--bbox: expected four numbers 'west,south,east,north' ({err})") from None
    labels_ = tuple(sorted(set(labels or ())))
    return {
        "labels": labels_,
        "date_from": day(date_from, "date-from"),
        "date_to": day(date_to, "date-to"),
        "bbox": box,
    }


@eval_app.command("cbir")
def eval_cbir(
    archive: Path,
    encoder: Encoder = None,
    head: Head = None,
    split: Split = "loo",
    k: Annotated[int, typer.Option(min=1)] = 20,
    seed: int = 0,
    jaccard: Annotated[float | None, typer.Option(help="Multi-label: relevant when Jaccard >= this.")] = None,
    runtime: Runtime = "auto",
    strict: Strict = False,
    as_json: Json = False,
) -> None:
    """map@k, map@k_hits, p@k, R-precision and mAP of an encoder (+ head) on a labelled archive."""
    from rsir import api

    with user_errors():
        validate.split(split)
        validate.encoder(encoder)
        arch = open_archive_or_exit(archive, strict)
        metrics = api.evaluate(
            arch, encoder=encoder, head=head, split=split, k=k, seed=seed, jaccard=jaccard, strict=strict,
            runtime=runtime, progress=True,
        ).to_dict()  # fmt: skip
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
    runtime: Runtime = "auto",
    overwrite: Annotated[bool, typer.Option(help="Replace a head in --out (indexes built with it break).")] = False,
    strict: Strict = False,
    as_json: Json = False,
) -> None:
    """Train a projection head on frozen features (or fine-tune), on the train side of --split only."""
    from rsir import api

    with user_errors():
        _check_train_options(out, overwrite, split, loss, pairs, encoder)
        arch = open_archive_or_exit(archive, strict)
        result = api.train_head(
            arch, out, encoder=encoder, split=split, seed=seed, pairs=pairs, loss=loss, epochs=epochs,
            finetune=finetune, runtime=runtime, progress=True,
        )  # fmt: skip
    emit(result.report, as_json)


def _check_train_options(out: Path, overwrite: bool, split: str, loss, pairs, encoder) -> None:
    from rsir.models.heads import HEAD_MANIFEST

    rerun = "indexes built with the old head must then be rebuilt with `rsir index --head`"
    validate.new_output(out, overwrite, marker=HEAD_MANIFEST, what="head checkpoint", rerun=rerun)
    validate.split(split)
    validate.loss(loss, pairs is not None)
    validate.encoder(encoder)
    if pairs is not None:
        validate.existing(pairs, "pairs file")


def demo(
    out: Annotated[Path, typer.Option(help="Where the demo writes its index, head and grids.")] = Path("rsir-demo"),
    runtime: Runtime = "auto",
    as_json: Json = False,
) -> None:
    """Index the embedded UC Merced sample, query it, evaluate, train a head, and write result grids."""
    from rsir import api

    with user_errors():
        report = api.run_demo(out, runtime=runtime)
    emit(report, as_json, lambda r: r["text"])


def register(app: typer.Typer) -> None:
    app.command()(index)
    app.command("index-remove")(index_remove)
    app.command()(search)
    app.command()(demo)
    app.add_typer(eval_app, name="eval")
    app.add_typer(train_app, name="train")
