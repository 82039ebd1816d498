"""The CLI and the search service run every job through the public API (rsir.api*); the CLI parses,
validates, calls and prints.

From the rooms it may import only declarations: error types it turns into exit 2, catalogues of names and the
validators that check an option before any work, and help texts. Anything else (a function that embeds,
trains, searches, simulates...) must be reached through rsir.api, so the CLI, a notebook and the web apps
run the same code. A new room import in rsir/cli fails this test until it is either routed through the API
or added here with its reason. (import-linter also forbids the job modules outright: see pyproject.toml.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import rsir

SRC = Path(rsir.__file__).parent

# module -> names the CLI may import from it (declarations only), with why.
ALLOWED: dict[str, set[str]] = {
    "rsir.data.items": {"ImageError"},  # error type -> exit 2
    "rsir.data.changecap": {"ChangeCaptionError"},  # error type -> exit 2
    "rsir.models.encoders": {"EncoderUnavailable", "check_encoder_name"},  # error type; name validator
    "rsir.models.text": {"check_text_encoder_name"},  # name validator
    "rsir.models.device": {"DeviceUnavailable", "check_device"},  # --device validator
    "rsir.models.runtime": {"RUNTIMES"},  # catalogue of --runtime
    "rsir.models.fusion": {"TFFConfig", "build_fusion"},  # --tff-* validated on a tiny model before any work
    "rsir.models.heads": {"HEAD_MANIFEST"},  # marks an existing head folder (--overwrite check)
    "rsir.data.splits": {"parse_split"},  # --split validator
    "rsir.index.store": {"STORE_HELP", "parse_store"},  # help text; --store validator
    "rsir.index.filters": {"check_bbox"},  # --bbox validator
    "rsir.index.faiss_index": {"INDEX_TYPES"},  # catalogue of --index-type
    "rsir.cbir.indexing": {"ENGINES"},  # catalogue of --engine
    "rsir.embed.ray_engine": {"EngineUnavailable", "require_ray"},  # error type; --engine ray validator
    "rsir.train.metric_head": {"LOSSES"},  # catalogue of --loss
    "rsir.active.strategies": {"STRATEGIES", "strategy_names"},  # catalogue of --strategies (with "default")
    "rsir.active.oracle": {"parse_rule"},  # --rule validator
    "rsir.active.store": {"CampaignMismatch"},  # error type -> exit 2
    # `rsir bench` and its child job measure the rooms themselves (the pieces a job is built from): the
    # benchmark harness is beside the API, not a job of it.
    "rsir.bench.run": {"QUICK", "SECTIONS", "BenchConfig", "run_bench"},
    "rsir.bench.runtime": {"own_peak_rss_mb"},
}
# The CLI's own package, the public API, and the web apps it starts (`rsir serve`, `rsir anneal serve`).
FREE = ("rsir.cli", "rsir.api", "rsir.app")


def room_imports(folder: Path) -> list[tuple[str, str, str]]:
    """(file, module, name) for every ``from rsir.X import name`` (any depth, lazy ones too) in ``folder``."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rsir"):
                for alias in node.names:
                    found.append((path.name, node.module, alias.name))
            elif isinstance(node, ast.Import):
                found += [(path.name, a.name, "*") for a in node.names if a.name.startswith("rsir.")]
    return found


def disallowed(found: list[tuple[str, str, str]], allowed: dict[str, set[str]] = ALLOWED) -> list[tuple[str, str, str]]:
    def ok(module: str, name: str) -> bool:
        if module == "rsir":
            return name in ("api", "__version__")
        return module.startswith(FREE) or name in allowed.get(module, set())

    return [f for f in found if not ok(f[1], f[2])]


def test_the_cli_reaches_jobs_only_through_the_public_api() -> None:
    bad = disallowed(room_imports(SRC / "cli"))
    assert not bad, "route these through rsir.api (or declare them in ALLOWED with the reason):\n" + "\n".join(
        f"  {file}: from {module} import {name}" for file, module, name in bad
    )


# The search service (rsir/app/search, rsir/app/common.py) pages and embeds through rsir.api_index.Index and
# rsir.api_itsr.ItsrModel; from the rooms it keeps declarations, upload/thumbnail image I/O and the serving
# plumbing of a shared Milvus Lite store.
SERVICE_ALLOWED: dict[str, set[str]] = {
    "rsir.index.filters": {"Filters"},  # the request's filters are the index's own type
    "rsir.index.store": {"StoreUnavailable"},  # error type -> 503
    "rsir.data.items": {"ImageError"},  # error type -> 400
    "rsir.data.images": {"ImageTooLarge", "load_image", "to_rgb_uint8"},  # decoding uploads, thumbnails
    "rsir.embed.cache": {"cache_root"},  # where thumbnails are cached
    # serving one Milvus Lite file to several uvicorn workers (app/search/serving.py)
    "rsir.index.manifest": {"IndexManifest"},
    "rsir.index.milvus_client": {"URI_ENV", "is_lite"},
    "rsir.index.milvus_server": {"shared_lite_server"},
}
# The annotation app (rsir/app/annotate) serves a campaign through rsir.api_campaign.Campaign, the object
# rsir.open_campaign hands a notebook: it claims, answers, undoes, trains rounds, invites and reads progress
# and the dashboard through it. From the rooms it keeps one declaration.
ANNOTATE_ALLOWED: dict[str, set[str]] = {
    "rsir.data.items": {"ImageError"},  # error type -> 422 (an item's image cannot be rendered)
}


def test_the_search_service_reaches_jobs_only_through_the_public_api() -> None:
    found = room_imports(SRC / "app" / "search") + [f for f in room_imports(SRC / "app") if f[0] == "common.py"]
    bad = disallowed(found, SERVICE_ALLOWED)
    assert not bad, "route these through rsir.api (or declare them with the reason):\n" + "\n".join(
        f"  {file}: from {module} import {name}" for file, module, name in bad
    )


def test_the_annotation_app_reaches_campaigns_only_through_the_public_api() -> None:
    bad = disallowed(room_imports(SRC / "app" / "annotate"), ANNOTATE_ALLOWED)
    assert not bad, "route these through rsir.api_campaign (or declare them with the reason):\n" + "\n".join(
        f"  {file}: from {module} import {name}" for file, module, name in bad
    )


def test_the_check_catches_a_job_import() -> None:
    """The scan sees lazy imports inside functions (how the CLI imports), and flags a job function."""
    code = "def f():\n    from rsir.cbir.indexing import index_archive\n    from rsir.cbir.indexing import ENGINES\n"
    tree = ast.parse(code)
    found = [("x.py", n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names]
    assert disallowed(found) == [("x.py", "rsir.cbir.indexing", "index_archive")]
