"""Fuzz every operation of the search API's OpenAPI with schemathesis: no input may cause a 5xx, and every
answer must match the documented status codes, content types and response schemas.

Cases come from schemathesis' strategies and run under hypothesis directly (its pytest plugin's lazy
fixture loader does not run under pytest 9). Bounded: a few derandomised examples per operation and mode.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed (pip install schemathesis)")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402  (schemathesis brings hypothesis)
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = {"positive": 12, "negative": 8}
OPERATIONS = {
    "GET /api/search/id",
    "POST /api/search/image",
    "GET /api/search/text",
    "POST /api/search/pair",
    "GET /api/search/pair-id",
    "GET /api/items",
    "GET /api/pairs",
    "GET /api/thumbnails/scene",
    "GET /api/thumbnails/pair",
    "GET /api/info",
}


@pytest.fixture(scope="module")
def operations(itsr_app) -> dict:
    """The operations of the full service (scene index + text-ITSR pair gallery), called in-process."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", itsr_app)
    found = {}
    for result in schema.get_all_operations():
        op = result.ok()
        found[f"{op.method.upper()} {op.path}"] = op
    return found


def _fuzz(operation, mode: str, ids: list[str]) -> None:
    """Run one operation's cases; in positive mode half of the cases name a real id (random ids only get 404s)."""
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    @given(
        case=operation.as_strategy(generation_mode=GenerationMode(mode)),
        real_id=st.sampled_from(ids) if ids else st.none(),
        use_real=st.booleans(),
    )
    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure prints its case as found
        suppress_health_check=list(HealthCheck),
        derandomize=True,  # the same cases every run: a failure is reproducible, not flaky
        database=None,
    )
    def run(case, real_id: str | None, use_real: bool) -> None:
        if mode == "positive" and use_real and real_id is not None and "id" in (case.query or {}):
            case.query["id"] = real_id
        response = case.call_and_validate(checks=CHECKS)
        assert response.status_code < 500, (case.path, case.query, response.text)

    run()


def test_schema_lists_every_operation(operations):
    assert set(operations) >= OPERATIONS


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_input_breaks_the_api(operations, itsr_app, mode: str):
    svc = itsr_app.state.service
    scene_ids, pair_ids = svc.scenes.manifest.ids[:20], [p.id for p in svc.pairs.pairs]
    failures = {}
    for name, operation in sorted(operations.items()):
        try:
            _fuzz(operation, mode, pair_ids if "pair" in name else scene_ids)
        except Unsatisfiable:  # nothing to break: an operation without parameters has no invalid input
            assert mode == "negative" and not operation.query, name
        except Exception as err:  # collect all operations' failures, then report them together
            failures[name] = f"{type(err).__name__}: {err}"[:2000]
    assert not failures, "\n\n".join(f"{name}:\n{msg}" for name, msg in failures.items())
