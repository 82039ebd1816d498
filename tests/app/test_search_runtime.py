"""`rsir serve --runtime` reaches the encoder that embeds uploaded queries; an int8 index gets int8 queries."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    ("asked", "index_runtime", "used"), [("torch", "onnx", "torch"), ("auto", "onnx-int8", "onnx-int8")]
)
def test_the_query_encoder_runs_on_the_runtime_asked(demo_index: Path, tmp_path: Path, asked, index_runtime, used):
    from rsir.app.search import create_search_app
    from rsir.models.runtime import runtime_of

    index = tmp_path / "idx"
    shutil.copytree(demo_index, index)
    manifest = json.loads((index / "manifest.json").read_text())
    (index / "manifest.json").write_text(json.dumps({**manifest, "runtime": index_runtime}))
    app = create_search_app(index, runtime=asked)
    space = app.state.service.scenes.api.query_space()
    assert runtime_of(space.encoder) == used
