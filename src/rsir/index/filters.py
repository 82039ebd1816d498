"""Metadata filters of a search (labels, date range, bounding box) and their evaluation over a manifest.

One definition for every store: FAISS evaluates them here into a row mask; Milvus translates the same
``Filters`` into a scalar expression that runs inside the database (see ``milvus_store``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cached_property, lru_cache

import numpy as np


@dataclass(frozen=True)
class Filters:
    """Filters on the manifest: class labels (any of), and date range / bounding box for items that carry
    ``meta["date"]`` (ISO date) / ``meta["bbox"]`` ([west, south, east, north], degrees). An item without
    the field never passes a filter on it."""

    labels: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None
    bbox: tuple[float, float, float, float] | None = None

    @property
    def active(self) -> bool:
        return bool(self.labels) or self.date_from is not None or self.date_to is not None or self.bbox is not None


NO_FILTERS = Filters()


def parse_date(value) -> float:
    """Day ordinal of an ISO date (or datetime) string; NaN when absent or unparsable."""
    if not isinstance(value, str) or len(value) < 10:
        return np.nan
    try:
        return float(date.fromisoformat(value[:10]).toordinal())
    except ValueError:
        return np.nan


def parse_bbox(value) -> list[float]:
    """[west, south, east, north] as floats; four NaNs when absent or malformed."""
    if isinstance(value, list | tuple) and len(value) == 4:
        try:
            out = [float(v) for v in value]
        except (TypeError, ValueError):
            pass
        else:
            if all(np.isfinite(out)):
                return out
    return [np.nan] * 4


def check_bbox(bbox: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    w, s, e, n = (float(v) for v in bbox)
    if not all(np.isfinite([w, s, e, n])) or s > n or w > e:
        raise ValueError("bbox: needs finite west <= east and south <= north")
    return w, s, e, n


class FilterColumns:
    """The manifest's labels, dates and footprints as arrays, and the row mask of a ``Filters``."""

    def __init__(self, labels: list[list[str]], meta: list[dict]) -> None:
        self.labels = [tuple(ls) for ls in labels]
        self.meta = meta or [{} for _ in self.labels]
        self.mask = lru_cache(maxsize=64)(self._mask)

    def __len__(self) -> int:
        return len(self.labels)

    @cached_property
    def dates(self) -> np.ndarray:
        return np.array([parse_date(m.get("date")) for m in self.meta], dtype=np.float64)

    @cached_property
    def bboxes(self) -> np.ndarray:
        return np.array([parse_bbox(m.get("bbox")) for m in self.meta], dtype=np.float64).reshape(-1, 4)

    def available(self) -> list[str]:
        out = ["label"] if any(self.labels) else []
        if np.isfinite(self.dates).any():
            out.append("date")
        if np.isfinite(self.bboxes).all(axis=1).any():
            out.append("bbox")
        return out

    def _mask(self, filters: Filters) -> np.ndarray:
        """Boolean [N]: rows passing the filters (cached per filter combination)."""
        keep = np.ones(len(self), dtype=bool)
        if filters.labels:
            wanted = set(filters.labels)
            keep &= np.fromiter((not wanted.isdisjoint(ls) for ls in self.labels), bool, len(self))
        with np.errstate(invalid="ignore"):  # NaN (no date / no bbox) compares False: such items drop out
            if filters.date_from is not None:
                keep &= self.dates >= filters.date_from.toordinal()
            if filters.date_to is not None:
                keep &= self.dates <= filters.date_to.toordinal()
            if filters.bbox is not None:
                w, s, e, n = filters.bbox
                b = self.bboxes
                keep &= (b[:, 0] <= e) & (b[:, 2] >= w) & (b[:, 1] <= n) & (b[:, 3] >= s)
        return keep
