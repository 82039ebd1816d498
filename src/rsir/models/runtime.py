"""Inference runtimes for the frozen passes of an encoder: eager torch, or the same graph in ONNX Runtime.

A frozen pass is a part of an encoder whose weights do not change while it runs: ``encode`` (the whole
encoder, for indexes), ``tokens`` (the token path, for ITSR features) or ``trunk:N`` (all but the last N
blocks, for cached trunk maps). :func:`frozen_pass` returns a callable for one of them on the encoder's
chosen runtime (:func:`set_runtime`; ``auto`` unless set):

- ``torch``: the encoder's own eager forward (training always uses this).
- ``onnx``: the pass exported once per (encoder, weights, pass, input size) to a cached ONNX file and run
  by ONNX Runtime, several times faster on CPUs. An export is checked against eager torch before it is
  cached, so an encoder that does not export faithfully never gets one.
- ``auto``: ``onnx`` where it works, else ``torch`` with a one-line note on stderr.
- ``onnx-int8``: the ``onnx`` export quantised to int8 (rsir.models.quantize); faster, not exact, so only
  on request, with its own feature-cache key (:func:`cache_variant`).

The runtime never changes results beyond float tolerance (vectors within 1e-4) and never enters feature
cache keys; index manifests record which one ran.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import os
import sys
import threading
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rsir.models.encoders import EncoderUnavailable, ImageEncoder

RUNTIMES = ("auto", "torch", "onnx", "onnx-int8")
OPSET = 17
# An export is kept only when it matches eager torch this closely (relative to the output's scale).
EXPORT_TOLERANCE = 1e-4
_ATTR = "_rsir_runtime"
# Resolved passes per encoder, outside the module so encoders stay picklable (Ray ships them to actors).
_PASSES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCK = threading.RLock()


class RuntimeUnavailable(EncoderUnavailable):
    """The requested runtime cannot run this encoder pass here (package missing, export failed...)."""


def set_runtime(encoder: ImageEncoder, runtime: str) -> ImageEncoder:
    """Choose the runtime of ``encoder``'s frozen passes (``auto``, ``torch`` or ``onnx``); returns it."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    setattr(encoder, _ATTR, runtime)
    return encoder


def cache_variant(encoder: ImageEncoder) -> str:
    """What feature caches must add to their key for this encoder's runtime: "" for the exact runtimes
    (their features are interchangeable), the runtime's name for an approximate one (int8)."""
    return "onnx-int8" if runtime_of(encoder) == "onnx-int8" else ""


def runtime_of(encoder: ImageEncoder) -> str:
    """The runtime requested for ``encoder`` (``auto`` unless :func:`set_runtime` said otherwise)."""
    return getattr(encoder, _ATTR, "auto")


@dataclass
class FrozenPass:
    """``x [B, C, S, S]`` (torch, any device) -> output on the CPU as a float32 torch tensor."""

    run: Callable[[torch.Tensor], torch.Tensor]
    runtime: str  # the one that actually runs: torch or onnx
    providers: tuple[str, ...] = ()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)


def frozen_pass(encoder: ImageEncoder, part: str = "encode") -> FrozenPass:
    """The ``part`` pass (``encode``, ``tokens`` or ``trunk:N``) of ``encoder`` on its chosen runtime.

    Kept on the encoder until its runtime or any of its tensors changes (in-place updates bump a tensor's
    version counter), so per-query calls cost nothing and trained weights never meet a stale export.
    """
    stamp = (runtime_of(encoder), tuple(t._version for t in encoder.state_dict(keep_vars=True).values()))
    with _LOCK:  # a web service's threads: one export, one session
        kept = _PASSES.setdefault(encoder, {})
        if part not in kept or kept[part][0] != stamp:
            kept[part] = (stamp, _resolve(encoder, part))
        return kept[part][1]


def _resolve(encoder: ImageEncoder, part: str) -> FrozenPass:
    module = _module(encoder, part)
    wanted = runtime_of(encoder)
    if wanted == "torch" or (wanted == "auto" and not _onnx_can_match_device(module)):
        return _torch_pass(module)
    try:
        return _onnx_pass(encoder, module, part, int8=wanted == "onnx-int8")
    except RuntimeUnavailable as err:
        if wanted != "auto":
            raise
        _note(f"runtime auto: {err}; using eager torch")
        return _torch_pass(module)


class _Call(nn.Module):
    """One method of the encoder as a module's forward (what the exporter traces)."""

    def __init__(self, encoder: ImageEncoder, method: str) -> None:
        super().__init__()
        self.encoder, self.method = encoder, method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self.encoder, self.method)(x)


def _module(encoder: ImageEncoder, part: str) -> nn.Module:
    if part in ("encode", "tokens"):
        return _Call(encoder, part)
    if part.startswith("trunk:"):
        return encoder.split(int(part.split(":", 1)[1]))[0]
    raise ValueError(f"unknown encoder pass {part!r} (encode, tokens, trunk:N)")


def _device_of(module: nn.Module) -> torch.device:
    param = next(module.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _torch_pass(module: nn.Module) -> FrozenPass:
    device = _device_of(module)

    def run(x: torch.Tensor) -> torch.Tensor:
        # no_grad, not inference_mode: cached trunk maps are saved inputs of the tail's backward pass.
        with torch.no_grad():
            return module(x.to(device)).float().cpu()

    return FrozenPass(run, "torch")


# ---------------------------------------------------------------- ONNX Runtime

_SESSIONS: dict[str, object] = {}


def _onnx_can_match_device(module: nn.Module) -> bool:
    """An encoder on an accelerator stays there unless ONNX Runtime has CUDA too (its CPU would be slower)."""
    if _device_of(module).type == "cpu":
        return True
    return onnx_available() and "CUDAExecutionProvider" in providers()


def onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _onnx_pass(encoder: ImageEncoder, module: nn.Module, part: str, int8: bool = False) -> FrozenPass:
    if not onnx_available():
        raise RuntimeUnavailable("ONNX Runtime is not installed (pip install onnxruntime onnx)")
    path = onnx_path(encoder, part)
    failed = path.with_suffix(".failed")  # an encoder that does not export is tried once, not every run
    if failed.is_file():
        raise RuntimeUnavailable(failed.read_text())
    if not path.is_file():
        try:
            _export_checked(encoder, module, path)
        except RuntimeUnavailable as err:
            failed.write_text(str(err))
            raise
    if int8:
        path = _int8_of(encoder, path)
    session = _session(path)
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(session.run(None, {name: arr})[0])

    return FrozenPass(run, "onnx-int8" if int8 else "onnx", tuple(session.get_providers()))


def _int8_of(encoder: ImageEncoder, fp32: Path) -> Path:
    from rsir.models.quantize import calibration_inputs, quantize_int8

    out = fp32.with_name(fp32.stem + "-int8.onnx")
    if not out.is_file():
        try:
            quantize_int8(fp32, out, calibration_inputs(encoder.config.preprocess))
        except Exception as err:  # the quantiser raises many types for unsupported graphs
            raise RuntimeUnavailable(f"{encoder.config.name} does not quantise to int8 ({err})") from err
    return out


def params_digest(module: nn.Module) -> str:
    """sha256 (first 16 hex) of a module's parameters and buffers: weights changed in place get a new file."""
    digest = hashlib.sha256()
    for key, value in module.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def onnx_dir() -> Path:
    """``$RSIR_ONNX_CACHE``, else ``onnx/`` in the rsir cache (exports outlive feature caches)."""
    from rsir.cachedir import cache_root

    return Path(os.environ.get("RSIR_ONNX_CACHE", cache_root() / "onnx"))


def _code_digest(encoder: ImageEncoder) -> str:
    """The encoder class's source file: an export never outlives a change to the code it traced."""
    try:
        return hashlib.sha256(Path(inspect.getfile(type(encoder))).read_bytes()).hexdigest()[:16]
    except (OSError, TypeError):
        return type(encoder).__qualname__


def onnx_path(encoder: ImageEncoder, part: str) -> Path:
    """One file per (encoder, weights, pass, input size); code, torch version and opset are in the key too."""
    cfg = encoder.config
    prep = cfg.preprocess
    stamp = [params_digest(encoder), _code_digest(encoder), part, prep.in_channels, prep.size, torch.__version__, OPSET]
    key = hashlib.sha256("|".join(map(str, stamp)).encode()).hexdigest()[:12]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in cfg.name)
    return onnx_dir() / f"{safe}-{encoder.weights_hash}-{part.replace(':', '')}-{prep.size}px-{key}.onnx"


def _example(encoder: ImageEncoder, device: torch.device) -> torch.Tensor:
    prep = encoder.config.preprocess
    gen = torch.Generator().manual_seed(0)
    return torch.randn(2, prep.in_channels, prep.size, prep.size, generator=gen).to(device)


def _export_checked(encoder: ImageEncoder, module: nn.Module, path: Path) -> None:
    """Export ``module`` to ``path`` (atomically) only if ONNX Runtime reproduces eager torch on it."""
    x = _example(encoder, _device_of(module))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        _export(module, x, tmp)
        with torch.inference_mode():
            ref = module(x).float().cpu().numpy()
        got = _session(tmp, cache=False).run(None, {"x": x.cpu().numpy()})[0]
        err = float(np.abs(got - ref).max()) / max(1.0, float(np.abs(ref).max()))
        if got.shape != ref.shape or not err <= EXPORT_TOLERANCE:
            raise RuntimeUnavailable(
                f"the ONNX export of {encoder.config.name} differs from eager torch (relative error {err:.2g})"
            )
        os.replace(tmp, path)
    except RuntimeUnavailable:
        raise
    except Exception as err:  # the exporter raises many types for unsupported graphs
        reason = f"{type(err).__name__}: {err}"
        raise RuntimeUnavailable(f"{encoder.config.name} does not export to ONNX ({reason})") from err
    finally:
        tmp.unlink(missing_ok=True)


def _export(module: nn.Module, x: torch.Tensor, out: Path) -> None:
    """The TorchScript-based exporter: it needs only the ``onnx`` package (the dynamo one needs onnxscript)."""
    quiet = contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO())
    with warnings.catch_warnings(), quiet[0], quiet[1], torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (x,),
            str(out),
            dynamo=False,
            opset_version=OPSET,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            do_constant_folding=True,
        )


def providers() -> list[str]:
    """CUDA first when this onnxruntime build has it (onnxruntime-gpu), else the CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def _session(path: Path, cache: bool = True):
    key = f"{path}|{torch.get_num_threads()}"
    if cache and key in _SESSIONS:
        return _SESSIONS[key]
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # The same thread budget as torch (`torch.set_num_threads`, OMP_NUM_THREADS), one op at a time.
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.inter_op_num_threads = 1
    # Waiting threads sleep instead of spinning: decode threads and other processes need the cores.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), opts, providers=providers())
    if cache:
        _SESSIONS[key] = session
    return session


def _note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)
