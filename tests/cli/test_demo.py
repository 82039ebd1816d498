import json
from pathlib import Path

from typer.testing import CliRunner

from rsir.cli.main import app


def test_demo_runs_offline_and_writes_grids(tmp_path, demo_index) -> None:
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["index"]["items"] == 168
    assert report["trained_head_holdout"]["map@20"] > report["off_the_shelf_holdout"]["map@20"]
    assert report["off_the_shelf_loo"]["map@20"] > 0.6
    for query in report["queries"].values():
        assert Path(query["grid"]).stat().st_size > 10_000
        assert query["p@10"] > 0.2
    assert len(list((tmp_path / "demo").glob("grid_*.png"))) == 3
    assert len(list((tmp_path / "demo").glob("grid_*.html"))) == 3
