"""The package's layers: no ``pinmem`` import, at module level or inside a function, runs back up the layers.

Bottom-up, a module may import from its own layer and the layers below it, never from one above:

0. ``pinmem.errors``, ``pinmem.runtime`` (errors; the device and autocast helpers)
1. ``pinmem.data``, ``pinmem.models`` (datasets and networks; neither knows about training)
2. ``pinmem.evaluation``, ``pinmem.synth`` (metrics and inference on a model; the procedural world)
3. ``pinmem.engine`` (what a method is configured with and runs in: the configuration, the distributed context)
4. ``pinmem.methods`` (ERM, ISW, MLDG, Pin the Memory)
5. ``pinmem.training`` (the trainer, checkpoints, faults, the hot path, logs, RNG states)
6. ``pinmem.segmenter``, ``pinmem.predict``, ``pinmem.export`` (a checkpoint in, predictions or an exported graph
   out)
7. ``pinmem`` (the package's facade, ``pinmem.load``), ``pinmem.cli``, ``pinmem.commands``, ``pinmem.demo``

Each entry is a sub-package (all its modules are in that one layer) or a module directly in ``pinmem/``; the root
package ``pinmem`` holds every layer, so its entry names its ``__init__`` (the facade) alone. Every module found
under ``pinmem/`` must be placed here; there is no exception list. Besides the layers: no two packages (sub-packages
and top-level modules) import each other, and no two modules do, counting imports under ``TYPE_CHECKING`` too.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pinmem"
ROOT = "pinmem"

LAYERS: list[tuple[str, ...]] = [
    ("pinmem.errors", "pinmem.runtime"),
    ("pinmem.data", "pinmem.models"),
    ("pinmem.evaluation", "pinmem.synth"),
    ("pinmem.engine",),
    ("pinmem.methods",),
    ("pinmem.training",),
    ("pinmem.segmenter", "pinmem.predict", "pinmem.export"),
    ("pinmem", "pinmem.__main__", "pinmem.cli", "pinmem.commands", "pinmem.demo"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def unit(module: str) -> str:
    """The sub-package or top-level module holding ``module`` (``pinmem.training.trainer`` → ``pinmem.training``);
    ``pinmem`` for the facade."""
    return ".".join(module.split(".")[:2])


def layer_of(module: str) -> int | None:
    """The layer of the entry of :data:`LAYERS` naming ``module``'s sub-package or top-level module."""
    for index, names in enumerate(LAYERS):
        if unit(module) in names:
            return index
    return None


def _target(module: str, name: str | None) -> str:
    """The module an import reaches: ``from pinmem.engine import config`` reaches ``pinmem.engine.config``."""
    if name and f"{module}.{name}" in MODULES:
        return f"{module}.{name}"
    while module not in MODULES and "." in module:  # `import pinmem.x.y` where y is not a module
        module = module.rsplit(".", 1)[0]
    return module


def _absolute(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".") if MODULES[importer].name == "__init__.py" else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(importer: str) -> list[tuple[str, int, str]]:
    """Every ``pinmem`` import of a module: (target module, line, ``eager`` / ``lazy`` / ``typing``).

    ``eager`` runs when the module is imported; ``lazy`` inside a function or class body; ``typing`` under
    ``if TYPE_CHECKING``."""
    found: list[tuple[str, int, str]] = []

    def visit(node: ast.AST, kind: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            kind = "lazy" if kind == "eager" else kind
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.body:
                visit(child, "typing")
            for child in node.orelse:
                visit(child, kind)
            return
        if isinstance(node, ast.Import):
            found.extend((_target(a.name, None), node.lineno, kind) for a in node.names
                         if a.name == "pinmem" or a.name.startswith("pinmem."))
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(importer, node)
            if module == "pinmem" or module.startswith("pinmem."):
                found.extend((_target(module, a.name), node.lineno, kind) for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child, kind)

    visit(ast.parse(MODULES[importer].read_text(encoding="utf-8")), "eager")
    return found


def test_every_module_has_a_layer():
    unplaced = [m for m in MODULES if layer_of(m) is None]
    assert not unplaced, f"place these modules in LAYERS of tests/test_layers.py: {unplaced}"


def test_the_walk_sees_module_level_lazy_and_typing_imports():
    assert ("pinmem.errors", 7, "eager") in [(t, n, k) for t, n, k in imports("pinmem") if k == "eager"]
    assert any(t == "pinmem.training.trainer" and k == "lazy" for t, _, k in imports("pinmem.commands.train"))
    assert any(t == "pinmem.segmenter" and k == "typing" for t, _, k in imports("pinmem"))
    assert ("pinmem.engine.config", "eager") in [(t, k) for t, _, k in imports("pinmem.methods.base")]


def test_no_import_goes_up_a_layer():
    upward = []
    for importer in MODULES:
        here = layer_of(importer)
        for target, line, kind in imports(importer):
            assert target in MODULES, f"{MODULES[importer]}:{line} imports {target}, which does not exist"
            there = layer_of(target)
            if here is not None and there is not None and there > here:
                upward.append(f"{importer} (layer {here}) line {line}: {kind} import of {target} (layer {there})")
    assert not upward, "imports that run up the layers:\n" + "\n".join(upward)


def test_a_package_init_pulls_in_nothing_above_its_lowest_module():
    """Importing any module first runs its packages' ``__init__``: what those import when loaded must sit no
    higher than the package's lowest module, or importing a low module would execute a higher layer."""
    offending = []
    for package, path in MODULES.items():
        if path.name != "__init__.py":
            continue
        members = [m for m in MODULES if m == package or m.startswith(package + ".")]
        lowest = min(layer_of(m) for m in members)
        for target, line, kind in imports(package):
            if kind == "eager" and layer_of(target) > lowest:
                offending.append(f"{path}:{line} imports {target} (layer {layer_of(target)} > {lowest})")
    assert not offending, "\n".join(offending)


def test_every_entry_is_one_whole_package_or_top_level_module():
    """No package spans two layers: an entry is a sub-package of ``pinmem`` or a module directly in it."""
    names = [name for names in LAYERS for name in names]
    assert len(names) == len(set(names))
    assert all(name == ROOT or (name.count(".") == 1 and name in MODULES) for name in names), names


def _cycles(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Pairs (a, b) with a path a → b and b → a (reachability over ``edges``)."""
    reach: dict[str, set[str]] = {}
    for start in edges:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        reach[start] = seen
    return sorted((a, b) for a in reach for b in reach[a] if a < b and a in reach.get(b, ()))


def test_no_package_level_cycle():
    """Sub-packages and top-level modules import each other in one direction only (every import counts)."""
    edges: dict[str, set[str]] = {}
    for importer in MODULES:
        for target, _, _ in imports(importer):
            if unit(target) != unit(importer):
                edges.setdefault(unit(importer), set()).add(unit(target))
    assert not _cycles(edges), f"packages importing each other: {_cycles(edges)}"



def test_no_module_level_cycle():
    """No two modules import each other, not even one of them only under ``TYPE_CHECKING``."""
    edges: dict[str, set[str]] = {}
    for importer in MODULES:
        for target, _, _ in imports(importer):
            if target != importer and MODULES[target].name != "__init__.py":
                edges.setdefault(importer, set()).add(target)
    assert not _cycles(edges), f"modules importing each other: {_cycles(edges)}"
