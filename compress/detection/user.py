"""A detector of the user's own: ``--decode FILE.py:fn`` turns its raw outputs into boxes.

The protocol: ``fn(outputs, input_size)`` gets the network's raw outputs for a batch (what its ``forward``
returns: a tensor, or a tuple / list / dict of them) and the model input's ``(H, W)``, and returns one entry
per image: ``(boxes, scores, labels)`` or a dict with those keys, where ``boxes`` is ``(k, 4)`` x1, y1, x2, y2
in pixels of the model input, ``scores`` ``(k,)`` and ``labels`` ``(k,)`` class indices (as the ``--eval``
labels number them). Decoding, NMS and thresholds are the function's own.

:func:`load_decoder` imports the file (running its code: the user's explicit option, as ``--arch`` file.py
is) and :class:`UserDecoder` checks each answer, so a bad decoder is one line naming it (a usage error,
exit 2, found on the first batch before the graph is built). :func:`user_family` is the same decoder as
a detector family (``compress.detection.family.Family``) for code that asks a family for its decoding.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from compress.detection.family import Detections, Family
from compress.errors import UsageError
from compress.util.text import one_line

PROTOCOL = "fn(outputs, input_size) -> per image (boxes (k, 4) xyxy pixels, scores (k,), labels (k,))"


def load_decoder(spec: str) -> "UserDecoder":
    """The decoder named ``FILE.py:fn`` (or ``package.module:fn``); a one-line usage error when it cannot be had."""
    prefix, sep, name = spec.rpartition(":")
    if not sep or not prefix or not name:
        raise UsageError(f"--decode {spec!r} is not of the form FILE.py:function", f"the protocol: {PROTOCOL}")
    try:
        if prefix.endswith(".py") or "/" in prefix:
            path = Path(prefix)
            if not path.is_file():
                raise UsageError(f"--decode {spec}: no file {prefix}", "give the path of your decoder's .py file")
            module_name = f"compress_user_decode_{abs(hash(str(path.resolve())))}"
            loader = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(loader)
            sys.modules[module_name] = module
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(prefix)
    except UsageError:
        raise
    except Exception as err:  # noqa: BLE001 - the user's file may raise anything on import
        raise UsageError(f"--decode {spec}: importing {prefix} raised {type(err).__name__}: {one_line(err, 200)}",
                         "fix the decoder's file") from err
    fn = getattr(module, name, None)
    if not callable(fn):
        raise UsageError(f"--decode {spec}: {prefix} has no function {name!r}", f"the protocol: {PROTOCOL}")
    return UserDecoder(spec, fn)


class UserDecoder:
    """The user's function, with every answer checked and made ``[{"boxes", "scores", "labels"}]`` on the CPU."""

    def __init__(self, spec: str, fn: Callable[..., Any]):
        self.spec, self.fn = spec, fn

    def __call__(self, outputs: Any, input_size: tuple[int, int], images: int | None = None) -> Detections:
        try:
            answer = self.fn(outputs, tuple(int(v) for v in input_size))
        except Exception as err:  # noqa: BLE001 - user code
            raise UsageError(f"--decode {self.spec} raised {type(err).__name__}: {one_line(err, 200)}",
                             f"the protocol: {PROTOCOL}") from err
        if not isinstance(answer, (list, tuple)) or (images is not None and len(answer) != images):
            raise self._bad(f"returned {type(answer).__name__}"
                            + (f" of {len(answer)}" if isinstance(answer, (list, tuple)) else "")
                            + (f" for a batch of {images} images" if images is not None else ""))
        return [self._one(item, i) for i, item in enumerate(answer)]

    def _one(self, item: Any, i: int) -> dict[str, torch.Tensor]:
        if isinstance(item, dict):
            item = tuple(item.get(k) for k in ("boxes", "scores", "labels"))
        if not isinstance(item, (list, tuple)) or len(item) != 3:
            raise self._bad(f"image {i}: {type(item).__name__} instead of (boxes, scores, labels)")
        try:
            boxes, scores, labels = (torch.as_tensor(v).detach().cpu() for v in item)
        except Exception as err:  # noqa: BLE001
            raise self._bad(f"image {i}: {one_line(err, 120)}") from err
        k = boxes.shape[0] if boxes.dim() == 2 else -1
        if boxes.dim() != 2 or boxes.shape[1] != 4 or scores.shape != (k,) or labels.shape != (k,):
            raise self._bad(f"image {i}: boxes {tuple(boxes.shape)}, scores {tuple(scores.shape)}, labels "
                            f"{tuple(labels.shape)}")
        return {"boxes": boxes.float(), "scores": scores.float(), "labels": labels.long()}

    def _bad(self, what: str) -> UsageError:
        return UsageError(f"--decode {self.spec}: {what}", f"the protocol: {PROTOCOL}")

    @torch.no_grad()
    def detections(self, model: nn.Module, x: torch.Tensor) -> Detections:
        """The decoded boxes of ``model`` on the preprocessed batch ``x`` (eval mode)."""
        was = model.training
        model.eval()
        try:
            return self(model(x), tuple(x.shape[-2:]), images=x.shape[0])
        finally:
            model.train(was)


def user_family(decoder: UserDecoder) -> Family:
    """The decoder as a detector family: it claims no model by itself (the run names it with ``--decode``)."""
    return Family(f"your decoder {decoder.spec}", claims=lambda model: False, wrap=lambda model: model,
                  postprocess=lambda net, outputs, size: decoder(outputs, size))
