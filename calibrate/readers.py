"""Calibration readers: feed preprocessed images to onnxruntime's and TensorRT's INT8 calibrators.

* :class:`TensorCalibrationReader` implements ``onnxruntime.quantization.CalibrationDataReader``
  (``get_next`` / ``rewind``). onnxruntime is imported only when the name is first used (module
  ``__getattr__``), so importing :mod:`calibrate` stays light.
* :func:`make_tensorrt_calibrator` returns a ``tensorrt.IInt8EntropyCalibrator2`` (TensorRT 10,
  implicit quantization). TensorRT 11 removed calibrators: INT8 there must come from a Q/DQ ONNX
  model (``export.quantize.quantize_int8(..., target="tensorrt")``), and this function says so.

Images are one array (N, C, H, W), float32, already preprocessed exactly as the model expects.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from compress.calibrate.errors import CalibrationError
from compress.util.atomic import atomic_file

__all__ = ["TensorCalibrationReader", "make_tensorrt_calibrator", "as_image_array"]


def as_image_array(images) -> np.ndarray:
    """``images`` (torch tensor or numpy array, N x C x H x W) as a contiguous float32 array."""
    if hasattr(images, "detach"):  # torch.Tensor, without importing torch here
        images = images.detach().cpu().numpy()
    arr = np.ascontiguousarray(np.asarray(images), dtype=np.float32)
    if arr.ndim != 4 or arr.shape[0] == 0:
        raise CalibrationError(f"calibration images must be a non-empty N x C x H x W array, got shape {arr.shape}",
                               "preprocess the images into one batch tensor first")
    if not np.isfinite(arr).all():
        raise CalibrationError("calibration images contain NaN or infinite values", "check the preprocessing")
    return arr


class _ReaderMixin:
    """The reader's logic; the public class adds onnxruntime's base class on first use."""

    def __init__(self, images, input_name: str, batch_size: int = 32):
        if batch_size < 1:
            raise CalibrationError(f"calibration batch size must be >= 1, got {batch_size}")
        self.images = as_image_array(images)
        self.input_name = input_name
        self.batch_size = int(batch_size)
        self._pos = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next batch as ``{input_name: array}``, or ``None`` when all images were given."""
        if self._pos >= len(self.images):
            return None
        batch = self.images[self._pos:self._pos + self.batch_size]
        self._pos += len(batch)
        return {self.input_name: batch}

    def rewind(self) -> None:
        """Start again from the first image (onnxruntime calls this between calibration passes)."""
        self._pos = 0

    def __len__(self) -> int:
        return -(-len(self.images) // self.batch_size)


_READER_CLASS = None


def _reader_class():
    global _READER_CLASS
    if _READER_CLASS is None:
        from onnxruntime.quantization import CalibrationDataReader

        class TensorCalibrationReader(_ReaderMixin, CalibrationDataReader):
            """Batches of an in-memory image array for ``onnxruntime.quantization.quantize_static``.

            ``TensorCalibrationReader(images, input_name, batch_size=32)``; ``images`` is a torch
            tensor or numpy array (N, C, H, W), preprocessed. The last batch may be smaller.
            """

            __module__ = __name__

        _READER_CLASS = TensorCalibrationReader
    return _READER_CLASS


def __getattr__(name: str):
    if name == "TensorCalibrationReader":
        return _reader_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_tensorrt_calibrator(images, batch_size: int, cache_path: str | os.PathLike | None):
    """A TensorRT 10 ``IInt8EntropyCalibrator2`` over ``images`` (needs a CUDA GPU and torch).

    Batches are copied to one CUDA buffer (a torch tensor) whose address ``get_batch`` returns;
    only full batches are given (TensorRT requires ``get_batch_size()`` images each time). The
    calibration cache is read from and written (atomically) to ``cache_path`` when given. Raises
    :class:`CalibrationError` on TensorRT >= 11, which has no calibrators.
    """
    try:
        import tensorrt as trt
    except ImportError as err:
        raise CalibrationError("TensorRT is not installed", "pip install compress[tensorrt]") from err
    major = int(str(trt.__version__).split(".")[0])
    if major >= 11 or not hasattr(trt, "IInt8EntropyCalibrator2"):
        raise CalibrationError(
            f"TensorRT {trt.__version__} has no INT8 calibrator (removed in TensorRT 11)",
            "INT8 must come from a Q/DQ model: export.quantize.quantize_int8(..., target='tensorrt')",
        )
    import torch

    if not torch.cuda.is_available():
        raise CalibrationError("TensorRT calibration needs a CUDA GPU and none is visible")
    arr = as_image_array(images)
    if batch_size < 1 or len(arr) < batch_size:
        raise CalibrationError(f"{len(arr)} calibration images cannot fill one batch of {batch_size}",
                               "use more images or a smaller calibration batch")
    cache = Path(cache_path) if cache_path is not None else None

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)  # pybind11 trampolines need the explicit call
            self.images = arr
            self.cache_path = cache
            self._pos = 0
            self._device = torch.empty((batch_size,) + arr.shape[1:], dtype=torch.float32, device="cuda")

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names):  # -> list[int] of device pointers, or None when done
            if self._pos + batch_size > len(self.images):
                return None
            host = torch.from_numpy(self.images[self._pos:self._pos + batch_size])
            self._device.copy_(host)
            torch.cuda.synchronize()
            self._pos += batch_size
            return [int(self._device.data_ptr())]  # one network input (the image batch)

        def read_calibration_cache(self):
            if self.cache_path is not None and self.cache_path.is_file():
                return self.cache_path.read_bytes()
            return None

        def write_calibration_cache(self, data) -> None:
            if self.cache_path is not None:
                with atomic_file(self.cache_path, "wb") as handle:
                    handle.write(bytes(data))

    return EntropyCalibrator()
