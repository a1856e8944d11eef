"""Export a checkpoint to ONNX or TorchScript, with the memory pinned inside the graph.

The exported graph has one input and one output:

``image``   float32 B×3×H×W, RGB scaled to [0, 1] and normalised with the ImageNet mean/std
            (``(rgb / 255 - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225)``), exactly what
            :func:`pinmem.data.transforms.normalize` produces;
``logits``  float32 B×N×H×W at the input size, N the checkpoint's classes (19 for Cityscapes; argmax over dim 1
            = class indices; the names are in the ``classes`` metadata).

The memory M is a buffer of the model, so it is stored in the file as a constant: the exported model reads the
memory it was trained with and never writes it. The read is the deterministic softmax (Gumbel noise is turned
off for the export even if the checkpoint asked for it at evaluation). Batch, height and width are dynamic
(ONNX: named dimensions ``batch``, ``height``, ``width``; TorchScript: traced, valid for any size because no
size-dependent branch of the network changes with the size). The normalisation constants are also stored as
ONNX metadata (``mean``, ``std``, ``classes``).

ONNX export uses ``torch.onnx.export``. In torch ≥ 2.9 its default is the ``torch.export``-based ("dynamo")
exporter, which needs the ``onnxscript`` package; ``exporter="auto"`` uses it when ``onnxscript`` is installed
and falls back to the TorchScript-based exporter (``dynamo=False``, deprecated but still shipped) otherwise or
when the dynamo export fails.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from pinmem.data.classes import class_set_from
from pinmem.data.labels import CLASSES
from pinmem.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from pinmem.errors import PinmemError
from pinmem.training.checkpoint import load_model

FORMATS = ("onnx", "torchscript")
EXPORTERS = ("auto", "dynamo", "legacy")
#: the largest |exported − PyTorch| logit difference :func:`verify_export` accepts
VERIFY_TOLERANCE = 1e-3
log = logging.getLogger(__name__)


class ExportError(PinmemError):
    """The model cannot be exported in the requested format (the message says what is missing)."""


class LogitsModel(nn.Module):
    """Wraps a segmentation model so that ``forward(image) -> logits`` (a plain tensor, as exporters need)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> Tensor:
        out = self.model(image)
        return out if isinstance(out, Tensor) else out.logits


@contextlib.contextmanager
def deterministic_read(model: nn.Module) -> Iterator[None]:
    """Eval mode and no Gumbel noise in the memory read for the duration of the block."""
    memory = getattr(model, "memory", None)
    was_training, gumbel = model.training, getattr(memory, "gumbel_eval", False)
    model.eval()
    if memory is not None:
        memory.gumbel_eval = False
    try:
        yield
    finally:
        if memory is not None:
            memory.gumbel_eval = gumbel
        model.train(was_training)


def _example(height: int, width: int, batch: int = 2) -> Tensor:
    """The tracing input. Batch 2, since torch.export specialises dimensions of size 1; at least 32×32 so that
    no resize in the network is a no-op at the example size (a traced no-op would be wrong at other sizes)."""
    if height < 32 or width < 32:
        raise ExportError(f"the example input must be at least 32×32, got {height}×{width}")
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(0))


def _onnx_dynamo(wrapper: nn.Module, x: Tensor, path: Path, opset: int | None) -> None:
    # Dim.DYNAMIC rather than named Dims with ranges: the size checks in the heads' resize() give guards such
    # as ``(H - 1) // 16 + 1 != (H - 1) // 4 + 1`` that the symbolic solver cannot prove for a range, so
    # torch.export refuses explicit Dims; with DYNAMIC they become (true) runtime assumptions.
    dynamic = torch.export.Dim.DYNAMIC
    # the exporter's internal loggers are children of the public ``torch.onnx`` one, whose level they inherit
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)  # "torchvision is not installed. Skipping torchvision::nms" etc.
    try:
        _onnx_dynamo_export(wrapper, x, path, opset, dynamic)
    finally:
        onnx_log.setLevel(level)


def _onnx_dynamo_export(wrapper: nn.Module, x: Tensor, path: Path, opset: int | None, dynamic: object) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch-internal deprecations, nothing to act on
        program = torch.export.export(wrapper, (x,), dynamic_shapes={"image": {0: dynamic, 2: dynamic, 3: dynamic}})
        onnx_program = torch.onnx.export(program, (x,), dynamo=True, input_names=["image"],
                                         output_names=["logits"], opset_version=opset, verbose=False)
    onnx_program.save(str(path), external_data=False)


def _export_takes_dynamo() -> bool:
    """``torch.onnx.export`` has the ``dynamo`` switch (newer torch; 2.3 has only the TorchScript exporter)."""
    return "dynamo" in inspect.signature(torch.onnx.export).parameters


def dynamo_exporter_available() -> bool:
    """The ``torch.export``-based ONNX exporter as pinmem calls it: ``Dim.DYNAMIC``, ``dynamo=True``, onnxscript."""
    return (_export_takes_dynamo() and hasattr(torch.export, "Dim") and hasattr(torch.export.Dim, "DYNAMIC")
            and importlib.util.find_spec("onnxscript") is not None)


def _onnx_legacy(wrapper: nn.Module, x: Tensor, path: Path, opset: int | None) -> None:
    axes = {0: "batch", 2: "height", 3: "width"}
    switch = {"dynamo": False} if _export_takes_dynamo() else {}  # the TorchScript exporter, named where needed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation and tracer warnings about the size checks in resize()
        torch.onnx.export(wrapper, (x,), str(path), input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": axes, "logits": axes}, opset_version=opset or 17, **switch)


def _add_metadata(path: Path, extra: dict[str, str]) -> None:
    """Dimension names, normalisation and class names as ONNX metadata (skipped when onnx is missing)."""
    try:
        import onnx
    except ImportError:
        return
    model = onnx.load(str(path))
    for value in (*model.graph.input, *model.graph.output):  # readable names for the dynamic dimensions
        dims = value.type.tensor_type.shape.dim
        for index, name in ((0, "batch"), (2, "height"), (3, "width")):
            if len(dims) == 4 and not dims[index].HasField("dim_value"):
                dims[index].dim_param = name
    meta = {"mean": json.dumps(IMAGENET_MEAN), "std": json.dumps(IMAGENET_STD), "classes": json.dumps(CLASSES),
            "input": "float32 Bx3xHxW, RGB/255 normalised with mean/std", "output": "logits Bx19xHxW", **extra}
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def export_onnx(
    model: nn.Module, path: str | Path, height: int = 512, width: int = 1024, opset: int | None = None,
    exporter: str = "auto", metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``model`` as ONNX (dynamic batch/height/width; ``height``×``width`` is only the example size)."""
    if exporter not in EXPORTERS:
        raise ExportError(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = LogitsModel(model).eval()
    x = _example(height, width)
    if exporter == "dynamo" and importlib.util.find_spec("onnxscript") is None:
        raise ExportError("the dynamo ONNX exporter needs onnxscript: pip install onnxscript onnx")
    if exporter == "dynamo" and not dynamo_exporter_available():
        raise ExportError(f"the dynamo ONNX exporter needs a newer torch than {torch.__version__} "
                          "(torch.export.Dim.DYNAMIC and torch.onnx.export(dynamo=True); tested with 2.13); "
                          "use exporter='legacy'")
    with deterministic_read(model):
        if exporter in ("auto", "dynamo") and dynamo_exporter_available():
            try:
                _onnx_dynamo(wrapper, x, path, opset)
            except Exception as err:  # the exporter raises many types; fall back unless dynamo was asked for
                if exporter == "dynamo":
                    raise ExportError(f"ONNX export (dynamo) failed: {err}") from err
                log.warning("dynamo ONNX export failed (%s); using the TorchScript-based exporter", err)
                _onnx_legacy(wrapper, x, path, opset)
        else:
            try:
                _onnx_legacy(wrapper, x, path, opset)
            except Exception as err:
                raise ExportError(f"ONNX export failed: {err}") from err
    _add_metadata(path, metadata or {})
    return path


def export_torchscript(model: nn.Module, path: str | Path, height: int = 512, width: int = 1024,
                       classes: tuple[str, ...] = CLASSES) -> Path:
    """Write ``model`` as a traced TorchScript module (``torch.jit.load(path)(image) -> logits``); ``classes`` (the
    names of the output channels) go into its ``pinmem.json`` extra file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = LogitsModel(model).eval()
    with deterministic_read(model), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarning about the no-op check in resize(); see module doc
        traced = torch.jit.trace(wrapper, _example(height, width), check_trace=False)
        extra = {"pinmem.json": json.dumps({"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "classes": list(classes)})}
        torch.jit.save(traced, str(path), _extra_files=extra)  # (torch.jit is deprecated upstream; still works)
    return path


@dataclass
class ExportCheck:
    """The exported file run (onnxruntime or ``torch.jit``) against the PyTorch model on one random input of
    ``height``×``width``: the largest absolute difference of their logits."""

    max_abs_diff: float
    height: int
    width: int
    tolerance: float = VERIFY_TOLERANCE

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance


def verify_export(path: str | Path, fmt: str, model: nn.Module, height: int, width: int) -> ExportCheck:
    """Run the exported file at ``path`` and ``model`` on the same input (best another size than the example the
    export was traced at, to check that the sizes are dynamic) and compare their logits."""
    import numpy as np

    x = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = LogitsModel(model).eval()(x).numpy()
    if fmt == "onnx":
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ExportError("verifying an ONNX export needs onnxruntime: pip install onnxruntime") from err
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    else:
        with torch.no_grad():
            out = torch.jit.load(str(path))(x).numpy()
    return ExportCheck(float(np.abs(out - ref).max()), height, width)


@dataclass
class Exported:
    """What :func:`export_checkpoint` wrote, and its check when one was asked for."""

    path: Path
    #: the names of the output channels, in order
    classes: tuple[str, ...]
    check: ExportCheck | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def export_checkpoint(
    checkpoint: str | Path, out: str | Path, fmt: str = "onnx", height: int = 512, width: int = 1024,
    opset: int | None = None, exporter: str = "auto", verify_at: tuple[int, int] | None = None,
) -> Exported:
    """Load a checkpoint (weights-only, one read) and export it (the entry point of ``pinmem export``);
    ``verify_at`` = (height, width): then run the file against the model at that size (:func:`verify_export`)."""
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    loaded = load_model(checkpoint, map_location="cpu")
    model, config = loaded.model, loaded.config
    names = class_set_from(config.model.classes, config.model.palette, config.model.num_classes).names
    if fmt == "onnx":
        if importlib.util.find_spec("onnx") is None and importlib.util.find_spec("onnxscript") is None:
            log.info("onnx is not installed: the file is written without metadata")
        meta = {"pinmem.method": config.method, "pinmem.arch": config.model.arch,
                "pinmem.backbone": config.model.backbone, "pinmem.checkpoint": Path(checkpoint).name,
                "classes": json.dumps(list(names)), "output": f"logits Bx{len(names)}xHxW"}
        path = export_onnx(model, out, height, width, opset, exporter, meta)
    else:
        path = export_torchscript(model, out, height, width, names)
    check = None if verify_at is None else verify_export(path, fmt, model, *verify_at)
    return Exported(path, tuple(names), check)
