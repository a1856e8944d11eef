"""Reading and validating style YAML files.

A style file is a mapping with the keys of :class:`pinmem.synth.style.Style` (``name``, ``format``,
``description``, ``classes``, ``materials``, ``camera``, ``layout``, ``lighting``, ``weather``, ``sensor``) and
optionally ``extends: NAME_OR_PATH`` to start from another style (mappings are merged key by key, lists
replaced). Unknown keys and bad values raise :class:`~pinmem.errors.ConfigError` naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from pinmem.errors import ConfigError
from pinmem.synth.style import (
    CLASS_KEYS,
    DEFAULT_MATERIALS,
    FORMATS,
    MATERIAL_KEYS,
    CameraSpec,
    LayoutSpec,
    LightingSpec,
    Look,
    SensorSpec,
    Style,
    WeatherSpec,
)

STYLES_DIR = Path(__file__).resolve().parent / "styles"
SECTIONS: dict[str, type] = {
    "camera": CameraSpec, "layout": LayoutSpec, "lighting": LightingSpec, "weather": WeatherSpec, "sensor": SensorSpec,
}
TOP_KEYS = ("name", "format", "description", "extends", "classes", "materials", *SECTIONS)


def shipped_styles() -> list[str]:
    """Names of the styles shipped in ``pinmem/synth/styles``."""
    return sorted(p.stem for p in STYLES_DIR.glob("*.yaml") if not p.stem.startswith("_"))


def style_path(name_or_path: str | Path, relative_to: Path | None = None) -> Path:
    """The file of a shipped style name, or an existing path (tried relative to ``relative_to`` first)."""
    text = str(name_or_path)
    if (STYLES_DIR / f"{text}.yaml").is_file() and "/" not in text and not text.endswith((".yaml", ".yml")):
        return STYLES_DIR / f"{text}.yaml"
    for candidate in ([relative_to / text] if relative_to else []) + [Path(text).expanduser()]:
        if candidate.is_file():
            return candidate.resolve()
    raise ConfigError(
        f"unknown style {text!r}: neither a shipped style ({', '.join(shipped_styles())}) nor a style file"
    )


def load_style(name_or_path: str | Path | Style) -> Style:
    """A shipped style by name, or a style YAML file by path, validated."""
    if isinstance(name_or_path, Style):
        return name_or_path
    path = style_path(name_or_path)
    return parse_style(resolve_extends(path), source=str(path), default_name=path.stem)


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"style file {path}: cannot read it as YAML ({err})") from err
    if not isinstance(data, dict):
        raise ConfigError(f"style file {path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    return data


def resolve_extends(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The file's mapping with its ``extends`` chain merged in (the file's own keys win)."""
    if path in seen:
        raise ConfigError(f"style file {path}: 'extends' loops back to itself ({' -> '.join(map(str, seen))})")
    data = read_yaml(path)
    base_name = data.pop("extends", None)
    if base_name is None:
        return data
    if not isinstance(base_name, str):
        raise ConfigError(f"style file {path}: key 'extends' must be a style name or path, got {base_name!r}")
    base = resolve_extends(style_path(base_name, relative_to=path.parent), (*seen, path))
    base.pop("name", None)
    base.pop("description", None)
    return deep_merge(base, data)


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class _Where:
    """Names the file and key in error messages."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"style file {self.source}: key '{key}': {message}")


def parse_style(data: dict[str, Any], source: str = "<dict>", default_name: str = "style") -> Style:
    """Validate a style mapping (``extends`` already resolved) into a :class:`Style`."""
    where = _Where(source)
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise where.error(unknown[0], f"unknown key; known top-level keys are {', '.join(TOP_KEYS)}")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name or any(c in name for c in "/\\ "):
        raise where.error("name", f"must be a non-empty word (it names the output folder), got {name!r}")
    fmt = data.get("format", name if name in FORMATS else None)
    if fmt not in FORMATS:
        raise where.error("format", f"must be one of {', '.join(FORMATS)} (the dataset layout to write), got {fmt!r}")
    classes = _parse_classes(data.get("classes"), where)
    materials = dict(DEFAULT_MATERIALS)
    for key, value in _mapping(data.get("materials", {}), "materials", where).items():
        if key not in MATERIAL_KEYS:
            raise where.error(f"materials.{key}", f"unknown material; known: {', '.join(MATERIAL_KEYS)}")
        materials[key] = _parse_dataclass(Look, value, f"materials.{key}", where, base=materials[key])
    sections = {key: _parse_dataclass(cls, data.get(key, {}), key, where) for key, cls in SECTIONS.items()}
    description = data.get("description", "")
    if not isinstance(description, str):
        raise where.error("description", "must be text")
    style = Style(name=name, format=fmt, classes=classes, materials=materials, description=description.strip(),
                  source=source, **sections)
    return dataclasses.replace(style, digest=style_digest(style))


def style_digest(style: Style) -> str:
    """A short hash of everything that affects the pictures (not the file's path)."""
    content = dataclasses.asdict(style)
    content.pop("source")
    content.pop("digest")
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def _mapping(value: Any, key: str, where: _Where) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise where.error(key, f"must be a mapping, got {type(value).__name__}")
    return value


def _parse_classes(value: Any, where: _Where) -> tuple[Look, ...]:
    given = {str(k).strip().replace(" ", "_"): v for k, v in _mapping(value, "classes", where).items()}
    unknown = sorted(set(given) - set(CLASS_KEYS))
    if unknown:
        raise where.error(f"classes.{unknown[0]}", f"unknown class; the classes are {', '.join(CLASS_KEYS)}")
    missing = [k for k in CLASS_KEYS if k not in given]
    if missing:
        raise where.error("classes", f"every class needs a look; missing: {', '.join(missing)}")
    return tuple(_parse_dataclass(Look, given[k], f"classes.{k}", where) for k in CLASS_KEYS)


def _parse_dataclass(cls: type, value: Any, key: str, where: _Where, base: Any = None) -> Any:
    data = _mapping(value, key, where)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise where.error(f"{key}.{unknown[0]}", f"unknown key; known keys of '{key}': {', '.join(known)}")
    values = {name: _parse_value(known[name], v, f"{key}.{name}", where) for name, v in data.items()}
    return dataclasses.replace(base, **values) if base is not None else cls(**values)


def _number(value: Any, key: str, where: _Where, meta: dict[str, Any]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise where.error(key, f"must be a number, got {value!r}")
    if meta.get("integer") and float(value) != int(value):
        raise where.error(key, f"must be a whole number, got {value!r}")
    lo, hi = meta.get("lo"), meta.get("hi")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise where.error(key, f"must lie in [{lo}, {hi}], got {value!r}")
    return int(value) if meta.get("integer") else float(value)


def _rgb(value: Any, key: str, where: _Where) -> tuple[float, float, float]:
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise where.error(key, f"must be an [R, G, B] colour, got {value!r}")
    meta = {"lo": 0, "hi": 255}
    return tuple(_number(v, key, where, meta) for v in value)  # type: ignore[return-value]


def _parse_value(f: dataclasses.Field, value: Any, key: str, where: _Where) -> Any:
    kind = f.metadata.get("kind")
    if kind == "range":
        pair = [value, value] if isinstance(value, int | float) and not isinstance(value, bool) else value
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise where.error(key, f"must be [low, high] or one number, got {value!r}")
        lo, hi = (_number(v, key, where, f.metadata) for v in pair)
        if lo > hi:
            raise where.error(key, f"low {lo} is above high {hi}")
        return (float(lo), float(hi))
    if kind == "number":
        return _number(value, key, where, f.metadata)
    if kind == "choice":
        if value not in f.metadata["choices"]:
            raise where.error(key, f"must be one of {', '.join(f.metadata['choices'])}, got {value!r}")
        return value
    if kind == "colors":
        items = [value] if isinstance(value, list | tuple) and value and not isinstance(value[0], list | tuple) \
            else value
        if not isinstance(items, list | tuple) or not items:
            raise where.error(key, f"must be a list of [R, G, B] colours, got {value!r}")
        return tuple(_rgb(c, key, where) for c in items)
    if kind == "rgb":
        return _rgb(value, key, where)
    raise where.error(key, "cannot be set here")  # pragma: no cover - every field has a kind
