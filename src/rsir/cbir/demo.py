"""`rsir demo`: the whole CBIR flow on the embedded UC Merced sample, offline, in a few minutes on a laptop."""

from __future__ import annotations

from pathlib import Path

from rsir.cbir import indexing
from rsir.cbir.evaluation import evaluate_vectors, labels_of, split_of
from rsir.cbir.space import Space
from rsir.cbir.training import train_cbir
from rsir.index.searcher import SearchIndex
from rsir.viz.grid import Cell, write_grid

DEMO_QUERIES = ("airplane/airplane00", "harbor/harbor00", "tenniscourt/tenniscourt00")


def run_demo(out: Path, k: int = 10, runtime: str = "auto") -> dict:
    from rsir.data.archives import open_archive
    from rsir.data.demo import demo_archive_path

    out = Path(out)
    archive = open_archive(demo_archive_path())
    space = Space.load(runtime=runtime)
    report = indexing.index_archive(archive, out / "index", space)
    index = SearchIndex(out / "index")
    queries = {}
    for qid in DEMO_QUERIES:
        hits = indexing.search(index, indexing.query_vector(index, item_id=qid), k, skip_id=qid)
        cells = [Cell([Path(h.path)], f"{h.rank}. {h.id}\n{h.score:.3f}") for h in hits]
        grid = write_grid(
            Cell([Path(index.manifest.paths[index.row_of(qid)])], qid),
            cells,
            out / f"grid_{qid.split('/')[0]}.png",
        )
        write_grid(Cell([Path(index.manifest.paths[index.row_of(qid)])], qid), cells, grid.with_suffix(".html"))
        queries[qid] = {
            "p@10": sum(h.labels == index.manifest.labels[index.row_of(qid)] for h in hits) / k,
            "grid": str(grid),
        }

    emb = space.embed(archive, progress=False)
    labels = labels_of(archive, emb.ids)
    loo = split_of(labels, "loo", 0)
    off_loo = evaluate_vectors(emb.vectors, labels, loo.query, loo.gallery, k=20, loo=True)
    holdout = split_of(labels, "holdout:0.25", 0)
    off_holdout = evaluate_vectors(emb.vectors, labels, holdout.query, holdout.gallery, k=20)
    train_cbir(archive, out / "head", split="holdout:0.25", seed=0, progress=False)
    head_emb = Space.load(head=out / "head", runtime=runtime).embed(archive, progress=False)
    head_holdout = evaluate_vectors(head_emb.vectors, labels, holdout.query, holdout.gallery, k=20)

    result = {
        "index": {
            "items": report.n_items,
            "images_per_second": report.images_per_second,
            "dir": str(out / "index"),
        },
        "queries": queries,
        "off_the_shelf_loo": off_loo,
        "off_the_shelf_holdout": off_holdout,
        "trained_head_holdout": head_holdout,
    }
    result["text"] = _describe(result)
    return result


def _describe(r: dict) -> str:
    lines = [
        f"indexed {r['index']['items']} demo scenes ({r['index']['images_per_second']} img/s) -> {r['index']['dir']}"
    ]
    lines += [f"query {q}: p@10 {v['p@10']:.2f}, grid {v['grid']}" for q, v in r["queries"].items()]
    lines.append(f"off-the-shelf map@20 (leave-one-out): {r['off_the_shelf_loo']['map@20']:.3f}")
    lines.append(f"off-the-shelf map@20 (25% holdout -> train): {r['off_the_shelf_holdout']['map@20']:.3f}")
    lines.append(f"trained head  map@20 (25% holdout -> train): {r['trained_head_holdout']['map@20']:.3f}")
    return "\n".join(lines)
