"""Guards a newcomer relies on: no silent overwrite, fast offline failures, readable help, one report."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from rsir.cli.main import app
from rsir.data.demo import demo_archive_path
from rsir.index.manifest import IndexManifest, IndexMismatch

runner = CliRunner()


def _scenes(root: Path, per_class: int = 10) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, label in enumerate(("forest", "river", "beach")):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            img = np.clip(np.array([60 + 60 * c, 200 - 50 * c, 90]) + rng.normal(0, 25, (32, 32, 3)), 0, 255)
            Image.fromarray(img.astype(np.uint8)).save(root / label / f"{label}{i}.png")
    return root


def test_synth_refuses_a_used_folder_and_overwrite_replaces_the_whole_set(tmp_path: Path) -> None:
    scenes, out = _scenes(tmp_path / "scenes"), tmp_path / "synth"
    first = runner.invoke(app, ["itsr", "synth", str(scenes), "--out", str(out), "--pairs", "20", "--json"])
    assert first.exit_code == 0, first.output
    before = (out / "LevirCCcaptions.json").read_text()
    again = runner.invoke(app, ["itsr", "synth", str(scenes), "--out", str(out), "--pairs", "10", "--seed", "1"])
    assert again.exit_code == 2 and "--overwrite" in again.output
    assert (out / "LevirCCcaptions.json").read_text() == before  # untouched
    redo = runner.invoke(app, ["itsr", "synth", str(scenes), "--out", str(out), "--pairs", "10", "--overwrite"])
    assert redo.exit_code == 0, redo.output
    images = sorted(p.name for p in (out / "images" / "train" / "A").iterdir())
    captions = json.loads((out / "LevirCCcaptions.json").read_text())["images"]
    assert images == sorted(e["filename"] for e in captions if e["split"] == "train")  # no leftovers
    assert len(captions) == 10


def test_train_cbir_keeps_an_existing_head(tmp_path: Path) -> None:
    head = tmp_path / "head"
    head.mkdir()
    (head / "head.json").write_text('{"kept": true}')
    result = runner.invoke(app, ["train", "cbir", str(demo_archive_path()), "--out", str(head)])
    assert result.exit_code == 2 and "--overwrite" in result.output and "rsir index --head" in result.output
    assert json.loads((head / "head.json").read_text()) == {"kept": True}


def test_head_mismatch_says_how_to_fix_it() -> None:
    manifest = IndexManifest("enc", "w1", 4, "cosine", "flat", [], [], [], "/data/archive", "/runs/head", "h-old")
    with pytest.raises(IndexMismatch) as err:
        manifest.check_compatible("enc", "w1", "h-new")
    message = str(err.value)
    assert "rsir index /data/archive --head /runs/head --out" in message and "put back the head" in message
    with pytest.raises(IndexMismatch, match="Rebuild the index with the current encoder"):
        manifest.check_compatible("enc", "w2", "h-old")


@pytest.mark.parametrize("command", [["serve", "IDX"], ["anneal", "serve", "DEMO", "--campaign", "c"]])
def test_busy_port_fails_before_announcing_a_url(command: list[str], tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{}")
    words = {"IDX": str(tmp_path), "DEMO": str(demo_archive_path())}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = str(busy.getsockname()[1])
        result = runner.invoke(app, [words.get(w, w) for w in command] + ["--port", port])
    assert result.exit_code == 2 and f"port {port} on 127.0.0.1 is already in use" in result.output
    assert "http://" not in result.output


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["itsr", "train", "x", "--out", "y", "--text-encoder", "minilmx"], "did you mean 'all-minilm-l6-v2'"),
        (["index", str(demo_archive_path()), "--out", "y", "--encoder", "hf:nobody/no-such-model"], "unreachable"),
    ],
)
def test_hub_names_without_internet_are_one_clear_line(args: list[str], phrase: str, tmp_path: Path) -> None:
    """No internet (a hub endpoint that refuses connections), as a user runs it: a process without
    HF_HUB_OFFLINE."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env |= {"HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}", "HF_HOME": str(tmp_path / "hf")}
    env |= {"RSIR_CACHE": str(tmp_path / "cache"), "PYTHONPATH": os.pathsep.join(sys.path)}
    code = "from rsir.cli.main import app; app()"
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert phrase in proc.stderr


@pytest.fixture()
def no_internet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The hub as a user without internet sees it: offline mode not set, the endpoint refusing connections."""
    import huggingface_hub.constants as hub_constants
    import transformers  # noqa: F401 -- its import (seconds) stays outside the timed part

    from rsir.models import hub_access

    endpoint = f"http://127.0.0.1:{_closed_port()}"
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    hub_access.hub_reachable.cache_clear()
    yield
    hub_access.hub_reachable.cache_clear()


@pytest.mark.parametrize("kind", ["text", "image"])
def test_hub_loads_fail_fast_without_internet(kind: str, no_internet) -> None:
    from rsir.models.encoders import EncoderUnavailable, load_encoder
    from rsir.models.text import TextEncoder

    start = time.perf_counter()
    with pytest.raises(EncoderUnavailable, match="unreachable") as err:
        TextEncoder("minilmx") if kind == "text" else load_encoder("hf:nobody/no-such-model")
    assert time.perf_counter() - start < 10, "the hub libraries retried"  # were 30-55 s of retries
    if kind == "text":
        assert "did you mean 'all-minilm-l6-v2'" in str(err.value)


def test_only_rank_zero_prints_under_torchrun(demo_index: Path) -> None:
    args = ["search", str(demo_index), "--id", "harbor/harbor00", "-k", "3", "--json"]
    assert json.loads(runner.invoke(app, args).stdout)["hits"]
    other_rank = runner.invoke(app, args, env={"RANK": "1"})
    assert other_rank.exit_code == 0 and other_rank.stdout == ""


def _commands(group, path: tuple[str, ...] = ()):
    if hasattr(group, "commands"):  # a group (typer ships its own click: no isinstance check)
        for name, sub in group.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield path, group


def test_help_at_80_columns_shows_every_option_in_full() -> None:
    commands = list(_commands(typer.main.get_command(app)))
    assert ("anneal", "simulate") in [path for path, _ in commands] and len(commands) > 12
    for path, command in commands:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
        assert result.exit_code == 0, path
        assert "…" not in result.output, (path, result.output)
        text = result.output
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("--"):
                    assert opt in text, (path, opt)
