"""ONNX and TorchScript export: parity with PyTorch, memory pinned as a constant, dynamic sizes."""

import numpy as np
import pytest
import torch
from conftest import optional_module
from eval_support import make_checkpoint, run_cli

from pinmem.export import export_onnx, export_torchscript
from pinmem.training.checkpoint import load_model

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("exp") / "tiny.pt")


def _reference(checkpoint, x):
    model = load_model(checkpoint).model
    with torch.no_grad():
        return model(torch.from_numpy(x)).logits.numpy()


SHAPES = [(1, 3, 64, 96), (2, 3, 75, 53)]  # another batch size and odd sizes than the example


def _onnx_parity(path, checkpoint):
    ort = optional_module("onnxruntime", "pip install pinmem[export]")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    rng = np.random.default_rng(0)
    for shape in SHAPES:
        x = rng.standard_normal(shape).astype(np.float32)
        out = session.run(["logits"], {"image": x})[0]
        assert out.shape == (shape[0], 19, *shape[2:])
        assert np.abs(out - _reference(checkpoint, x)).max() <= 1e-3


def test_onnx_cli_default_exporter_with_verify(tmp_path, checkpoint):
    """The default (torch.export-based) exporter through the CLI, checked with onnxruntime."""
    optional_module("onnxruntime", "pip install pinmem[export]")
    onnx = optional_module("onnx", "pip install pinmem[export]")
    path = tmp_path / "model.onnx"
    code, out, err = run_cli(["export", str(checkpoint), "--format", "onnx", "--out", str(path), "--height", "64",
                              "--width", "80", "--verify"])
    assert code == 0, err
    assert "verify: max |exported - PyTorch|" in out
    _onnx_parity(path, checkpoint)
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["pinmem.method"] == "pinmem" and "0.485" in meta["mean"]
    assert [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim] == ["batch", "", "height", "width"]
    assert len(model.graph.input) == 1  # the memory is not an input: it is stored in the graph
    slots = load_model(checkpoint).model.memory.slots.numpy()
    stored = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer]
    assert any(a.shape == slots.shape and np.allclose(a, slots) for a in stored)


def test_onnx_legacy_exporter(tmp_path, checkpoint):
    optional_module("onnxruntime", "pip install pinmem[export]")
    model = load_model(checkpoint).model
    path = export_onnx(model, tmp_path / "legacy.onnx", height=64, width=80, exporter="legacy")
    _onnx_parity(path, checkpoint)


def test_torchscript_reload_gives_the_same_logits(tmp_path, checkpoint):
    model = load_model(checkpoint).model
    path = export_torchscript(model, tmp_path / "model.ts", height=64, width=80)
    loaded = torch.jit.load(str(path))
    rng = np.random.default_rng(1)
    for shape in SHAPES:
        x = rng.standard_normal(shape).astype(np.float32)
        with torch.no_grad():
            out = loaded(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(out, _reference(checkpoint, x), atol=1e-4, rtol=0)


def test_export_with_gumbel_checkpoint_is_deterministic(tmp_path):
    ckpt = make_checkpoint(tmp_path / "gumbel.pt", overrides=("model.gumbel_at_eval=true",))
    model = load_model(ckpt).model
    assert model.memory.gumbel_eval
    path = export_torchscript(model, tmp_path / "g.ts", height=32, width=32)
    assert model.memory.gumbel_eval  # restored after the export
    loaded, x = torch.jit.load(str(path)), torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), loaded(x))


def test_export_rejects_tiny_example(tmp_path, checkpoint):
    code, _, err = run_cli(["export", str(checkpoint), "--format", "torchscript", "--out", str(tmp_path / "m.ts"),
                            "--height", "16"])
    assert code == 2 and "at least 32×32" in err
