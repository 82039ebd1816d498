"""benchmarks/bench_cbir.py: the --runtime option reaches the frozen encoder, an unknown one is refused."""

from __future__ import annotations

import pytest


def test_runtime_option_reaches_the_space_and_an_unknown_one_is_refused(benchmark_script) -> None:
    from rsir.models.runtime import runtime_of

    bench = benchmark_script("bench_cbir")
    assert bench.parse_args([]).runtime == "auto"
    assert runtime_of(bench.load_space(bench.parse_args(["--runtime", "torch"])).encoder) == "torch"
    with pytest.raises(SystemExit, match="--runtime: unknown runtime 'tensorrt'; choose from auto, torch"):
        bench.load_space(bench.parse_args(["--runtime", "tensorrt"]))
