"""docs/itsr.md stays true: every option it shows exists, and it does not call working features missing."""

import re
from pathlib import Path

import typer

from rsir.cli.main import app

DOC = Path(__file__).resolve().parents[2] / "docs" / "itsr.md"


def _documented_options() -> dict[str, set[str]]:
    """{itsr subcommand: options used with it in the doc's command lines (continuations joined)}."""
    text = DOC.read_text().replace("\\\n", " ")
    found: dict[str, set[str]] = {}
    for match in re.finditer(r"rsir itsr (\w+)([^\n`]*)", text):
        found.setdefault(match.group(1), set()).update(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", match.group(2)))
    return found


def test_every_documented_itsr_option_exists() -> None:
    group = typer.main.get_command(app).commands["itsr"]
    documented = _documented_options()
    assert {"train", "eval", "search", "synth"} <= set(documented)
    for name, options in documented.items():
        known = {o for p in group.commands[name].params for o in (*p.opts, *p.secondary_opts)}
        assert options <= known, (name, options - known)


def test_doc_describes_fine_tuning_as_working() -> None:
    text = DOC.read_text()
    assert "not implemented" not in text
    assert "--finetune N" in text and "--finetune" in _documented_options()["train"]
