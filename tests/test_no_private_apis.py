"""pinmem uses only the public APIs of PyTorch and OmegaConf: no underscore-prefixed module, class, function or
attribute of theirs, so that an upgrade cannot break it silently."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pinmem"
LIBRARIES = r"(?:torch|nn|F|dist|omegaconf|OmegaConf|DictConfig|ListConfig)"
PATTERNS = [
    re.compile(rf"\b{LIBRARIES}(?:\.\w+)*\._[A-Za-z]\w*"),  # torch.nn.modules.batchnorm._BatchNorm, "torch.onnx._x"
    re.compile(r"^\s*from\s+(?:torch|omegaconf)[\w.]*\s+import\s+(?:\(\s*)?(?:[\w\s,]*,\s*)?_[A-Za-z]\w*", re.M),
    re.compile(r"^\s*(?:from|import)\s+(?:torch|omegaconf)(?:\.\w+)*\._[A-Za-z]\w*", re.M),  # a private module
]


def _sources() -> dict[Path, str]:
    return {p: p.read_text(encoding="utf-8") for p in sorted(PACKAGE.rglob("*.py"))}


def test_no_private_torch_or_omegaconf_names():
    hits = []
    for path, text in _sources().items():
        for pattern in PATTERNS:
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                hits.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {match.group(0).strip()}")
    assert not hits, "private torch/omegaconf names:\n" + "\n".join(hits)


def test_no_private_attribute_of_other_objects():
    """``obj._name`` only on ``self``/``cls``: an object of another library (an OmegaConf node, a torch module)
    cannot be told apart by its text, so pinmem reaches into no one's private attributes."""
    hits = []
    for path, text in _sources().items():
        for node in ast.walk(ast.parse(text)):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                hits.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: .{node.attr}")
    assert not hits, "private attributes of other objects:\n" + "\n".join(hits)


def test_the_patterns_catch_what_they_are_for():
    samples = ["isinstance(m, nn.modules.batchnorm._BatchNorm)", "from torch.nn.utils.stateless import "
               "_reparametrize_module", 'logging.getLogger("torch.onnx._internal.exporter")',
               "import torch._dynamo", "from omegaconf._utils import x", "nn.modules.dropout._DropoutNd"]
    for sample in samples:
        assert any(p.search(sample) for p in PATTERNS), sample
    assert not any(p.search("from torch import nn\nx = torch.func.functional_call") for p in PATTERNS)
