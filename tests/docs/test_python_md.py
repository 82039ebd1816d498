"""docs/python.md runs: its ```python blocks execute in order, in one namespace, on the embedded demo archive."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "python.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_doc_has_a_block_per_job() -> None:
    blocks = python_blocks(DOC.read_text())
    joined = "\n".join(blocks)
    assert len(blocks) >= 6
    for call in ("rsir.build_index", "rsir.train_head", "rsir.evaluate", "rsir.simulate", "rsir.open_campaign",
                 "rsir.train_itsr", "rsir.open_itsr", ".search_text"):  # fmt: skip
        assert call in joined, call


def test_python_md_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "python_md"}
    for n, block in enumerate(python_blocks(DOC.read_text()), 1):
        try:
            exec(compile(block, f"{DOC.name} block {n}", "exec"), namespace)
        except Exception as err:  # name the block: the traceback points into the doc
            raise AssertionError(f"docs/python.md block {n} failed: {err!r}\n{block}") from err
