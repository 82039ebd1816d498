"""Result grids: a query and its ranked results as one PNG, or as a self-contained HTML page.

A cell shows one or more images side by side (a scene, or a before/after pair) and a caption.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

THUMB = 160


@dataclass
class Cell:
    images: list[Path | np.ndarray]  # paths, or uint8 [H, W, 3]
    caption: str


def _thumb(source: Path | np.ndarray, size: int = THUMB) -> Image.Image:
    if isinstance(source, np.ndarray):
        img = Image.fromarray(source)
    else:
        from rsir.data.images import load_image, to_rgb_uint8

        img = Image.fromarray(to_rgb_uint8(load_image(Path(source))))
    return img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)


def _cell_image(cell: Cell, size: int) -> Image.Image:
    text_h = 30
    out = Image.new("RGB", (size * len(cell.images) + 4 * (len(cell.images) - 1), size + text_h), "white")
    for k, src in enumerate(cell.images):
        out.paste(_thumb(src, size), (k * (size + 4), 0))
    draw = ImageDraw.Draw(out)
    for line_no, line in enumerate(cell.caption.split("\n")[:2]):
        draw.text((2, size + 2 + 13 * line_no), line[: 26 * len(cell.images)], fill="black")
    return out


def write_grid(
    query: Cell | None,
    results: list[Cell],
    out: Path,
    columns: int = 5,
    size: int = THUMB,
    title: str | None = None,
) -> Path:
    """Write a PNG (``.png``) or HTML (``.html``) grid; the query, if any, comes first, framed in red;
    ``title`` (e.g. a text query) heads the grid."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() in {".html", ".htm"}:
        head = f"<h3>{html.escape(title)}</h3>" if title else ""
        out.write_text(
            _html(query, results, size).replace(
                "<body style='font:12px sans-serif'>", "<body style='font:12px sans-serif'>" + head
            )
        )
        return out
    cells = ([query] if query else []) + results
    tiles = [_cell_image(c, size) for c in cells]
    if query:
        ImageDraw.Draw(tiles[0]).rectangle([0, 0, tiles[0].width - 1, size - 1], outline="red", width=4)
    w, h = max(t.width for t in tiles), max(t.height for t in tiles)
    rows = (len(tiles) + columns - 1) // columns
    top = 20 if title else 0
    canvas = Image.new("RGB", (max(columns * (w + 6), 360 if title else 0), top + rows * (h + 6)), "white")
    if title:
        ImageDraw.Draw(canvas).text((4, 4), title[:90], fill="black")
    for n, tile in enumerate(tiles):
        canvas.paste(tile, ((n % columns) * (w + 6), top + (n // columns) * (h + 6)))
    canvas.save(out)
    return out


def _data_uri(source: Path | np.ndarray, size: int) -> str:
    buf = io.BytesIO()
    _thumb(source, size).save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _html(query: Cell | None, results: list[Cell], size: int) -> str:
    def figure(cell: Cell, css: str = "") -> str:
        imgs = "".join(f'<img src="{_data_uri(s, size)}" width="{size}">' for s in cell.images)
        cap = html.escape(cell.caption).replace("\n", "<br>")
        return f'<figure style="display:inline-block;margin:4px;{css}">{imgs}<figcaption>{cap}</figcaption></figure>'

    body = (figure(query, "outline:3px solid red") if query else "") + "".join(figure(c) for c in results)
    return f"<!doctype html><meta charset='utf-8'><title>rsir results</title><body style='font:12px sans-serif'>{body}"
