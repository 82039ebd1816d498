"""int8 static quantisation of an exported encoder pass (``--runtime onnx-int8``, an explicit choice).

Unlike ``onnx``, int8 changes the vectors (cosines to float32 around 0.95-0.99), so its features are cached
under their own key and an index records it; docs/benchmarks.md gives its retrieval cost next to its speed.
Activation ranges are calibrated on the embedded demo scenes (UC Merced, 8 per class), QDQ format, per-channel
int8 weights.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rsir.models.config import Preprocess

CALIBRATION_IMAGES = 42  # every 4th demo scene: two per class


def calibration_inputs(prep: Preprocess, n: int = CALIBRATION_IMAGES) -> np.ndarray:
    """``[n, C, S, S]`` encoder inputs from the embedded demo archive, prepared as archive items are."""
    from rsir.data.archives import open_archive
    from rsir.data.demo import demo_archive_path
    from rsir.data.images import load_image
    from rsir.models.preprocess import prepare

    items = open_archive(demo_archive_path()).items
    step = max(1, len(items) // n)
    return np.stack([prepare(load_image(it.path), prep).numpy() for it in items[::step][:n]])


def quantize_int8(fp32: Path, out: Path, inputs: np.ndarray, batch: int = 8) -> None:
    """Write the int8 (QDQ) version of the float32 ONNX file ``fp32`` to ``out``, atomically."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.left = iter([{"x": inputs[s : s + batch]} for s in range(0, len(inputs), batch)])

        def get_next(self):
            return next(self.left, None)

    pre = out.with_name(f".{out.name}.pre{os.getpid()}.onnx")
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        quant_pre_process(str(fp32), str(pre))
        quantize_static(
            str(pre),
            str(tmp),
            Batches(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        os.replace(tmp, out)
    finally:
        pre.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
