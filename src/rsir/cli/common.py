"""Small helpers shared by the CLI groups: printing reports, turning library errors into clear exits."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer


def emit(data: Any, as_json: bool, human: Callable[[Any], str] | None = None) -> None:
    """`--json`: one JSON document on stdout. Otherwise a human-readable rendering. Under torchrun only
    rank 0 prints (every rank holds the same result)."""
    from rsir.cli.validate import main_process

    if not main_process():
        return
    if as_json:
        typer.echo(json.dumps(data, indent=1, default=str))
    else:
        typer.echo(human(data) if human else json.dumps(data, indent=1, default=str))


def training_summary(summary: dict, out: Path) -> str:
    """One line for a text-ITSR / text training summary: best epoch, its val scores, time, where it is."""
    val = summary["val"]
    return (
        f"best epoch {summary['best_epoch']}: val mR {val['mR']:.2f} (t2i R@10 {val['t2i']['r@10']:.2f}, "
        f"i2t R@10 {val['i2t']['r@10']:.2f}); {summary['train_seconds']:.1f}s; checkpoint in {out}"
    )


def table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "(nothing)"
    columns = columns or list(rows[0])
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths, strict=True))  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


@contextmanager
def user_errors() -> Iterator[None]:
    """Expected failures (bad input, missing files, unavailable encoders) exit 2 with one clear line."""
    from rsir.data.items import ImageError
    from rsir.models.encoders import EncoderUnavailable

    try:
        yield
    except (ImageError, EncoderUnavailable, FileNotFoundError, ValueError, KeyError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        typer.echo(f"error: {msg}", err=True)
        raise typer.Exit(2) from None


def open_archive_or_exit(path: Path, strict: bool, layout: str = "auto"):
    """:func:`rsir.api.open_archive`, reporting skipped (unreadable) files on stderr."""
    from rsir import api

    archive = api.open_archive(path, layout=layout, strict=strict)
    if archive.skipped:
        print(archive.summary(), file=sys.stderr)
    return archive
