"""A newcomer's mistakes: each is one clear line and exit 2 -- no traceback -- and is caught before any work
(the feature cache stays empty: no archive was embedded to find a typo)."""

from __future__ import annotations

import importlib.util
import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsir.cli.main import app
from rsir.data.demo import demo_archive_path

DEMO = str(demo_archive_path())


@pytest.fixture()
def busy_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    yield str(sock.getsockname()[1])
    sock.close()


@pytest.fixture()
def places(tmp_path: Path) -> dict[str, str]:
    head = tmp_path / "head"
    head.mkdir()
    (head / "head.json").write_text("{}")
    index = tmp_path / "idx"
    index.mkdir()
    (index / "manifest.json").write_text("{}")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    return {"HEAD": str(head), "IDX": str(index), "FULL": str(full), "NEW": str(tmp_path / "new")}


MISTAKES: list[tuple[str, str]] = [
    # (command line, a phrase the one-line error must contain)
    ("index DEMO --out NEW --index-type ivfq", "did you mean 'ivfpq'"),
    ("index DEMO --out NEW --engine rey", "unknown engine 'rey'"),
    ("index DEMO --out NEW --index-type ivfpq --pq-m 7", "must divide the dimension 1280"),
    ("index DEMO --out NEW --encoder effnet", "did you mean 'efficientnet-lite0'"),
    ("index DEMO --out NEW --encoder tim:resnet50", "did you mean 'timm:resnet50'"),
    ("index NEW --out NEW", "not found"),
    ("eval cbir DEMO --split holdot:0.2", "unknown split"),
    ("eval cbir DEMO --encoder efficientnet-lite1", "did you mean 'efficientnet-lite0'"),
    ("train cbir DEMO --out NEW --loss tripplet", "did you mean 'triplet'"),
    ("train cbir DEMO --out NEW --pairs NEW/answers.csv --loss balancd", "did you mean 'balanced'"),
    ("train cbir DEMO --out NEW --pairs NEW/answers.csv", "pairs file not found"),
    ("train cbir DEMO --out NEW --split holdout:2", "strictly between 0 and 1"),
    ("train cbir DEMO --out HEAD", "--overwrite"),
    ("search IDX", "--image FILE, --id ITEM_ID or --text SENTENCE"),
    ("search NEW --id x", "not an rsir index"),
    ("anneal simulate DEMO --out NEW --strategies random,mgeu", "did you mean 'mgue'"),
    ("anneal simulate DEMO --out NEW --initial-strategy neighbors", "did you mean 'neighbours'"),
    ("anneal simulate DEMO --out NEW --rule jacard:0.5", "unknown rule"),
    ("anneal simulate DEMO --out NEW --split lo", "unknown split"),
    ("anneal serve DEMO --campaign c --strategy anneal-mgeu", "did you mean 'anneal-mgue'"),
    ("anneal serve DEMO --campaign c --port PORT", "already in use"),
    ("serve NEW", "not an rsir index"),
    ("serve IDX --port PORT", "already in use"),
    ("itsr train NEW --out NEW", "dataset folder not found"),
    ("itsr train NEW --out NEW --device gpu", "available here: cpu"),
    ("itsr train NEW --out NEW --fusion gff-sume", "unknown GFF operator"),
    ("itsr train NEW --out NEW --text-encoder minilmx", "did you mean 'all-minilm-l6-v2'"),
    ("itsr train NEW --out NEW --encoder effnet", "did you mean 'efficientnet-lite0'"),
    ("itsr eval NEW NEW --device cuda:7", "available here: cpu"),
    ("itsr eval NEW NEW --split tset", "unknown split"),
    ("itsr search NEW NEW --text hi --device gpu", "available here: cpu"),
    ("itsr synth DEMO --out FULL", "--overwrite"),
    ("itsr synth DEMO --out FULL --overwrite", "refusing to clear it"),
    ("itsr synth DEMO --out NEW --pairs 0", "at least 6"),
    ("index DEMO --out NEW --runtime onnx-fast", "unknown runtime"),
    ("serve IDX --runtime onnx-fast", "unknown runtime"),
    ("anneal serve DEMO --campaign c --runtime onnx-fast", "unknown runtime"),
    ("anneal simulate DEMO --out NEW --runtime onnx-fast", "unknown runtime"),
    ("demo --out NEW --runtime onnx-fast", "unknown runtime"),
]
if importlib.util.find_spec("ray") is None:  # even with every shard cached, a run must not claim Ray
    MISTAKES.append(("index DEMO --out NEW --engine ray", "pip install 'rsir[ray]'"))


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.parametrize(("line", "phrase"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_mistake_is_one_clear_line_before_any_work(
    line: str, phrase: str, places: dict, busy_port: str, tmp_path: Path
) -> None:
    if "cuda" in line and _cuda():
        pytest.skip("this machine has CUDA")
    words = {"DEMO": DEMO, "PORT": busy_port, **places}
    args = [words.get(w, w) for w in line.split()]
    args = [a.replace("NEW/", places["NEW"] + "/") for a in args]
    cache = tmp_path / "cache"
    result = CliRunner().invoke(app, args, env={"RSIR_CACHE": str(cache), "COLUMNS": "200"})
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert phrase in " ".join(result.output.split()), result.output
    assert not (cache / "features").exists() or not any((cache / "features").iterdir())  # nothing embedded
    assert not Path(places["NEW"]).exists()  # nothing written
    assert (Path(places["FULL"]) / "keep.txt").read_text() == "mine"  # nothing lost
    assert json.loads((Path(places["HEAD"]) / "head.json").read_text()) == {}
