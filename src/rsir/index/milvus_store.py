"""The Milvus store: vectors and their filterable metadata in a Milvus collection, reached through pymilvus.

``milvus:FILE.db`` is Milvus Lite (embedded, one process holds the file); ``milvus:http://HOST:19530`` a
Milvus server or cluster (token from ``RSIR_MILVUS_TOKEN``), which any number of `rsir serve` workers share.
The local folder keeps only the manifest. Filters become a Milvus scalar expression evaluated inside
Milvus; every row carries the manifest generation that added it, and readers see only rows of their
manifest's generation or older, so an append killed before its manifest is written stays invisible and
its rerun (an idempotent upsert) completes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from pathlib import Path

import numpy as np

from rsir.index.filters import Filters, parse_bbox, parse_date
from rsir.index.manifest import IndexManifest
from rsir.index.milvus_client import (  # noqa: F401 (client, release, is_lite: the store's public door)
    URI_ENV,
    MilvusUnavailable,
    client,
    is_lite,
    is_server,
    milvus_errors,
    release,
)
from rsir.index.store import Page, ranked_hits

WINDOW = 16_384  # Milvus answers ranks up to offset + limit = 16384 in one search
INSERT_ROWS = 5_000
MAX_LABELS = 256
# rsir index types -> Milvus index types (Milvus Lite builds FLAT, HNSW, IVF_FLAT, IVF_SQ8; a server also IVF_PQ)
INDEX_TYPES = {"flat": "FLAT", "hnsw": "HNSW", "ivfflat": "IVF_FLAT", "ivfsq8": "IVF_SQ8", "ivfpq": "IVF_PQ"}
AUTO_APPROX_FROM = 100_000
COUNT_TTL_S = 10.0


def _literal(value) -> str:
    """A Milvus expression literal (strings and lists of strings JSON-quoted: quotes and backslashes escaped)."""
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def expression(filters: Filters, generation: int, exclude_id: str | None = None) -> str:
    """The Milvus scalar filter equal to ``FilterColumns.mask`` (an item without a date or footprint never
    passes a filter on it), limited to rows of ``generation`` or older."""
    parts = [f"gen <= {int(generation)}"]
    if filters.labels:
        parts.append(f"array_contains_any(labels, {_literal(list(filters.labels))})")
    if filters.date_from is not None:
        parts.append(f"day >= {filters.date_from.toordinal()}")
    if filters.date_to is not None:
        parts.append(f"day >= 1 and day <= {filters.date_to.toordinal()}")  # 0: no date
    if filters.bbox is not None:
        w, s, e, n = (float(v) for v in filters.bbox)
        parts.append(
            f"has_bbox == true and west <= {_literal(e)} and east >= {_literal(w)}"
            f" and south <= {_literal(n)} and north >= {_literal(s)}"
        )
    if exclude_id is not None:
        parts.append(f"id != {_literal(exclude_id)}")
    return " and ".join(parts)


def _rows(ids: list[str], vectors: np.ndarray, labels: list[list[str]], meta: list[dict], generation: int) -> list:
    rows = []
    for i, item_id in enumerate(ids):
        if len(labels[i]) > MAX_LABELS:
            raise ValueError(f"{item_id}: {len(labels[i])} labels; the milvus store keeps at most {MAX_LABELS}")
        m = meta[i] if i < len(meta) else {}
        day = parse_date(m.get("date"))
        box = parse_bbox(m.get("bbox"))
        has_box = bool(np.isfinite(box).all())
        rows.append(
            {
                "id": item_id,
                "vector": np.asarray(vectors[i], dtype=np.float32),
                "labels": list(labels[i]),
                "day": int(day) if np.isfinite(day) else 0,
                "has_bbox": has_box,
                "west": box[0] if has_box else 0.0,
                "south": box[1] if has_box else 0.0,
                "east": box[2] if has_box else 0.0,
                "north": box[3] if has_box else 0.0,
                "gen": int(generation),
            }
        )
    return rows


def _schema(dim: int):
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=4096)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("labels", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=MAX_LABELS, max_length=512)
    schema.add_field("day", DataType.INT64)  # date ordinal, 0 without a date
    schema.add_field("has_bbox", DataType.BOOL)
    for side in ("west", "south", "east", "north"):
        schema.add_field(side, DataType.DOUBLE)
    schema.add_field("gen", DataType.INT64)  # manifest generation that added the row
    return schema


def index_settings(kind: str, params, n: int) -> tuple[str, dict, dict]:
    """(Milvus index type, build params, search params) for an rsir index type and ``IndexParams``."""
    from rsir.index.faiss_index import default_nlist

    kind = MilvusBackend().resolve_kind(kind, n)
    if kind == "flat":
        return "FLAT", {}, {}
    if kind == "hnsw":
        return "HNSW", {"M": params.hnsw_m, "efConstruction": params.ef_construction}, {"ef": params.ef_search}
    build = {"nlist": params.nlist or default_nlist(n)}
    if kind == "ivfpq":
        build |= {"m": params.pq_m or 16, "nbits": params.nbits}
    return INDEX_TYPES[kind], build, {"nprobe": params.nprobe}


class MilvusStore:
    """An opened Milvus-backed index: searches and counts run in Milvus; rows map back through the manifest."""

    def __init__(self, manifest: IndexManifest, *, ef_search: int | None = None, nprobe: int | None = None, **_):
        rec = manifest.store
        self.uri = os.environ.get(URI_ENV) or rec["uri"]
        self.collection = rec["collection"]
        self.generation = int(rec.get("generation", 0))
        self.search_params = dict(rec.get("search_params", {}))
        if ef_search and "ef" in self.search_params:
            self.search_params["ef"] = ef_search
        if nprobe and "nprobe" in self.search_params:
            self.search_params["nprobe"] = nprobe
        self.ids = manifest.ids
        self._row = {id_: i for i, id_ in enumerate(manifest.ids)}
        self.client = client(self.uri)
        self._counts: dict[str, tuple[float, int]] = {}
        with milvus_errors(f"load collection {self.collection}"):
            if not self.client.has_collection(self.collection):
                raise MilvusUnavailable(f"collection {self.collection} is missing from Milvus at {self.uri}")
            self.client.load_collection(self.collection, replica_number=int(rec.get("replicas", 1)))

    def __len__(self) -> int:
        return len(self.ids)

    def vector(self, row: int) -> np.ndarray:
        with milvus_errors("fetch a vector"):
            expr = f"id == {_literal(self.ids[row])}"
            got = self.client.query(self.collection, filter=expr, output_fields=["vector"])
        if not got:
            raise KeyError(f"item {self.ids[row]!r} is no longer in the Milvus store")
        return np.asarray(got[0]["vector"], dtype=np.float32)[None]

    def _search(self, queries: np.ndarray, limit: int, expr: str, offset: int = 0) -> list:
        params = {"metric_type": "IP", "params": self._beam(offset + limit)}
        with milvus_errors("search"):
            return self.client.search(
                self.collection,
                data=[np.asarray(q, dtype=np.float32) for q in queries],
                limit=limit,
                offset=offset,
                filter=expr,
                output_fields=["id"],
                search_params=params,
            )

    def _beam(self, need: int) -> dict:
        params = dict(self.search_params)
        if "ef" in params:  # an HNSW beam narrower than the ranks asked for cannot return them
            params["ef"] = max(params["ef"], need)
        return params

    def count(self, expr: str) -> int:
        """Rows matching ``expr``; kept COUNT_TTL_S seconds, so a busy server counts each filter once in that
        time rather than once a request (removals by another process show within it)."""
        now = time.monotonic()
        hit = self._counts.get(expr)
        if hit is not None and now - hit[0] < COUNT_TTL_S:
            return hit[1]
        with milvus_errors("count"):
            got = self.client.query(self.collection, filter=expr, output_fields=["count(*)"])
        n = int(got[0]["count(*)"])
        if len(self._counts) > 1024:
            self._counts.clear()
        self._counts[expr] = (now, n)
        return n

    def _hits(self, found) -> list[tuple[int, float]]:
        out = []
        for hit in found:
            row = self._row.get(hit["entity"].get("id", hit.get("id")) if "entity" in hit else hit["id"])
            if row is not None:  # a row of a newer, uncommitted append is filtered out already; belt and braces
                out.append((row, float(hit["distance"])))
        return out

    def page(self, query: np.ndarray, filters: Filters, offset: int, k: int, exclude_row: int | None) -> Page:
        expr = expression(filters, self.generation, None if exclude_row is None else self.ids[exclude_row])
        # Unfiltered, the manifest is the count (rows of its generation are its items): a filtered count
        # scans the collection, which Milvus Lite does slowly (seconds at 1e5 rows)
        total = len(self.ids) - (exclude_row is not None) if not filters.active else self.count(expr)
        if offset >= total:
            return Page(total)
        # ranks 1 .. offset+k (+1 to see a tie at the page's edge), ordered as every store orders ties;
        # Milvus's own offset would slice its arbitrary order of equal scores
        need = min(offset + k + 1, total)
        if need > WINDOW:
            raise ValueError(f"the milvus store pages through the first {WINDOW} ranks only (offset + k)")
        return Page(total, ranked_hits(self._hits(self._search(query, need, expr)[0]))[offset : offset + k])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self), WINDOW)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        rows = np.full((len(queries), k), -1, dtype=np.int64)
        for i, found in enumerate(self._search(queries, k, f"gen <= {self.generation}")):
            for j, (row, score) in enumerate(self._hits(found)[:k]):
                rows[i, j], scores[i, j] = row, score
        return scores, rows


class MilvusBackend:
    """Creates, grows and shrinks Milvus-backed indexes; the manifest is written last, atomically."""

    kind = "milvus"

    def resolve_kind(self, index_type: str, n: int) -> str:
        if index_type == "auto":
            return "flat" if n < AUTO_APPROX_FROM else "hnsw"
        if index_type not in INDEX_TYPES:
            raise ValueError(
                f"unknown index type {index_type!r} for the milvus store; choose from {sorted(INDEX_TYPES)}"
            )
        return index_type

    def fit(self, params, n: int, dim: int) -> tuple:
        from dataclasses import replace

        return replace(params, index_type=self.resolve_kind(params.index_type, n)), ""

    def record(self, location: str, out: Path) -> dict:
        if not location:
            raise ValueError(
                "--store milvus needs a location: milvus:FILE.db (Milvus Lite) or milvus:http://HOST:19530"
            )
        location, _, query = location.partition("?")
        layout = _layout(query)
        if is_server(location):
            uri = location
        else:
            path = Path(location).expanduser().resolve()
            if path.suffix != ".db":
                raise ValueError(f"a Milvus Lite store is a FILE.db path, got {location!r}")
            path.parent.mkdir(parents=True, exist_ok=True)
            uri = str(path)
        tag = hashlib.sha1(str(Path(out).resolve()).encode()).hexdigest()[:10]
        name = f"rsir_{tag}_{uuid.uuid4().hex[:8]}"
        return {"kind": self.kind, "uri": uri, "collection": name, "generation": 0, **layout}

    def build(self, out: Path, vectors: np.ndarray, manifest: IndexManifest, params, seed: int = 0) -> dict:
        from rsir.index.faiss_index import save_folder

        rec = manifest.store
        c = client(rec["uri"])
        kind, build_params, search_params = index_settings(manifest.index_type, params, len(vectors))
        rec |= {"index": kind, "index_params": build_params, "search_params": search_params}
        start = time.perf_counter()
        with milvus_errors(f"create collection {rec['collection']}"):
            if c.has_collection(rec["collection"]):
                c.drop_collection(rec["collection"])
            schema = _schema(int(vectors.shape[1]))
            c.create_collection(rec["collection"], schema=schema, num_shards=rec.get("shards", 1))
            self._insert(c, rec["collection"], manifest, vectors, 0, 0)
            index = c.prepare_index_params()
            index.add_index("vector", index_type=kind, metric_type="IP", params=build_params)
            c.create_index(rec["collection"], index)
            c.load_collection(rec["collection"], replica_number=rec.get("replicas", 1))
        seconds = time.perf_counter() - start
        save_folder(out, None, manifest)
        return {"build_seconds": seconds, "index_bytes": 0}

    def _insert(self, c, collection: str, manifest: IndexManifest, vectors: np.ndarray, first: int, gen: int) -> None:
        ids, labels = manifest.ids[first:], manifest.labels[first:]
        meta = manifest.meta[first:] if manifest.meta else []
        for start in range(0, len(ids), INSERT_ROWS):
            end = start + INSERT_ROWS
            rows = _rows(ids[start:end], vectors[start:end], labels[start:end], meta[start:end], gen)
            c.upsert(collection, rows)  # upsert: a resumed append rewrites what a killed one left
        c.flush(collection)

    def append(self, out: Path, old: IndexManifest, vectors: np.ndarray, new: IndexManifest) -> None:
        from rsir.index.faiss_index import save_folder

        rec = new.store
        gen = int(old.store.get("generation", 0)) + 1
        with milvus_errors("append"):
            self._insert(client(rec["uri"]), rec["collection"], new, vectors, len(old.ids), gen)
        rec["generation"] = gen
        save_folder(out, None, new)

    def remove(self, out: Path, old: IndexManifest, keep: np.ndarray, new: IndexManifest) -> None:
        from rsir.index.faiss_index import save_folder

        kept = set(keep.tolist())
        gone = [item_id for i, item_id in enumerate(old.ids) if i not in kept]
        rec = new.store
        c = client(rec["uri"])
        with milvus_errors("remove items"):
            for start in range(0, len(gone), 1000):
                c.delete(rec["collection"], filter=f"id in {_literal(gone[start : start + 1000])}")
            c.flush(rec["collection"])
        save_folder(out, None, new)

    def discard(self, record: dict) -> None:
        try:
            c = client(record["uri"])
            if c.has_collection(record["collection"]):
                c.drop_collection(record["collection"])
        except Exception:  # the old store may be gone or unreachable: nothing left to free
            pass

    def open(self, folder: Path, manifest: IndexManifest, **knobs) -> MilvusStore:
        return MilvusStore(manifest, **knobs)


def _layout(query: str) -> dict:
    """``shards=N&replicas=M`` after the store address: the collection's shards (write parallelism, fixed at
    creation) and in-memory replicas (query parallelism and availability across query nodes)."""
    from urllib.parse import parse_qsl

    out = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in ("shards", "replicas") or not value.isdigit() or int(value) < 1:
            raise ValueError(f"milvus store option {key}={value!r}: use shards=N and/or replicas=M (N, M >= 1)")
        out[key] = int(value)
    return out
