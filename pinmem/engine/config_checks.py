"""The value checks of the training configuration (:func:`pinmem.engine.config.load_config` calls them).

:func:`normalise` maps the spellings users write to valid values; :func:`validate` makes the checks the type
system does not make. Each error is one line naming the key, the value and what is valid. The import runs one
way: :mod:`pinmem.engine.config` imports this module, which reads a configuration by its keys and does not import
the :class:`~pinmem.engine.config.Config` class (``config: Any`` below is one).
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any

from pinmem.engine.method_specs import METHOD_NAMES, method_spec
from pinmem.errors import ConfigError
from pinmem.models.factory import ARCHS, BACKBONES
from pinmem.models.norms import NORM_KINDS
from pinmem.runtime import AMP_MODES, resolve_device

CHOICES: dict[str, tuple[Any, ...]] = {
    "method": METHOD_NAMES,
    "model.arch": ARCHS,
    "model.backbone": BACKBONES,
    "model.output_stride": (None, 8, 16),
    "model.norm": (None, *NORM_KINDS),
    "data.on_bad_sample": ("stop", "skip"),
    "data.strong_jitter": ("none", "first_source", "all_sources"),
    "train.schedule": ("exp", "poly"),
    "train.amp": AMP_MODES,
    "train.dtype": ("float32", "float64"),
}
POSITIVE = ("train.iterations", "train.batch_per_domain", "train.crop_size", "data.epoch_length", "model.num_classes",
            "train.log_every", "train.exp_horizon", "pinmem.init_images", "isw.trials", "isw.images_per_trial",
            "isw.clusters", "data.prefetch_factor", "pinmem.temperature")
NON_NEGATIVE = ("train.val_every", "train.ckpt_every", "train.lr", "train.weight_decay", "data.num_workers",
                "train.momentum", "train.exp_rate", "train.poly_power", "meta.inner_lr_ratio", "meta.first_inner_lr",
                "pinmem.lambda_coh", "pinmem.lambda_div", "isw.start_epoch", "isw.weight")
#: what users write for ``train.amp`` in YAML or on the command line (booleans arrive as "False"/"True")
AMP_ALIASES = {"false": "none", "off": "none", "no": "none", "0": "none",
               "true": "bf16", "on": "bf16", "yes": "bf16", "1": "bf16"}


def show(value: Any) -> str:
    """A value as an error message shows it (strings quoted)."""
    return repr(value) if isinstance(value, str) else str(value)


def normalise(config: Any) -> None:
    """Spellings users write for a valid value: ``train.amp`` false/off -> none, true/on -> bf16, any case."""
    amp = str(config.train.amp).strip().lower()
    config.train.amp = AMP_ALIASES.get(amp, amp)


def _get(config: Any, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def validate(config: Any) -> None:
    """Value checks the type system does not make; each error is one line naming the key, the value and what is
    valid."""
    for key, allowed in CHOICES.items():
        value = _get(config, key)
        if value not in allowed:
            strings = [a for a in allowed if isinstance(a, str)]
            close = difflib.get_close_matches(str(value), strings, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{key}={show(value)} is not one of {', '.join(map(str, allowed))}{hint}")
    for key in POSITIVE:
        value = _get(config, key)
        if value is None and key == "model.num_classes":  # derived from the data below
            continue
        if not value > 0 or not math.isfinite(value):
            raise ConfigError(f"{key}={value} is not valid: it must be positive")
    for key in NON_NEGATIVE:
        value = _get(config, key)
        if not value >= 0 or not math.isfinite(value):
            raise ConfigError(f"{key}={value} is not valid: it must be zero or positive")
    if not 0 <= config.pinmem.memory_momentum <= 1:
        raise ConfigError(f"pinmem.memory_momentum={config.pinmem.memory_momentum} is not valid: it must be in [0, 1]")
    _validate_datasets(config)
    _validate_device(config.train.device)
    out = Path(config.train.out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"train.out_dir={str(out)!r} is a file, not a folder")
    if not config.data.sources:
        raise ConfigError("data.sources is empty: give at least one source dataset")
    meta = method_spec(config.method).meta
    if meta and len(config.data.sources) < 2 and config.train.batch_per_domain < 2:
        raise ConfigError(f"method {config.method} with a single source splits each batch into meta-train and "
                          "meta-test halves: train.batch_per_domain must be at least 2")
    if config.train.amp == "fp16" and config.train.device == "cpu":
        raise ConfigError("train.amp=fp16 needs a GPU; use bf16 on CPU")
    if config.method == "isw" and config.norm != "isw":  # ISW's loss reads the instance-whitened features
        raise ConfigError("method isw needs model.norm=isw (or leave model.norm unset)")
    if config.train.compile and meta and not config.meta.first_order:
        # measured (torch 2.13): the second backward through a compiled graph raises inside autograd.grad
        # ("compiled with non-empty donated buffers which requires create_graph=False"); AOTAutograd has no
        # double backward, so there is nothing to fall back to once the step has begun
        raise ConfigError(f"train.compile=true cannot be used with method {config.method} and "
                          "meta.first_order=false: the second-order update differentiates through the inner "
                          "gradient (double backward), which torch.compile's graphs do not support; use "
                          "meta.first_order=true or train.compile=false")
    if config.train.compile and meta and not compile_checked_with_meta_learning():
        import torch

        # measured: on torch 2.3.0 the compiled encoder under functional_call gave MLDG a meta-test loss 1.6 %
        # off the uncompiled one (tests/test_hot_path.py, `make test-oldest`); 2.13 agrees to 1e-12
        oldest = ".".join(map(str, COMPILE_WITH_META_LEARNING_FROM))
        raise ConfigError(f"train.compile=true with method {config.method} needs torch >= {oldest} "
                          f"(this torch: {torch.__version__}): on torch 2.3 the "
                          "compiled encoder under the meta-learning's functional_call computed a different "
                          "meta-test loss, and the versions between were not checked; use train.compile=false")


#: the oldest torch on which a compiled encoder was checked to give mldg/pinmem the uncompiled numbers
COMPILE_WITH_META_LEARNING_FROM = (2, 13)


def compile_checked_with_meta_learning() -> bool:
    import torch

    release = torch.__version__.split("+")[0].split(".")
    return tuple(int(p) for p in release[:2] if p.isdigit()) >= COMPILE_WITH_META_LEARNING_FROM


def _validate_datasets(config: Any) -> None:
    from pinmem.data import DATASETS, is_folder_dataset

    named = [(key, name) for key in ("data.sources", "data.targets") for name in _get(config, key)]
    named += [(f"data.roots.{name}", name) for name in config.data.roots]
    for key, name in named:
        root = config.dataset_root(str(name))
        if str(name).lower() not in DATASETS and not is_folder_dataset(root):
            close = difflib.get_close_matches(str(name).lower(), list(DATASETS), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{key}: unknown dataset {show(name)} (valid: {', '.join(DATASETS)}, or any name whose "
                              f"root holds a dataset.yaml; {root / 'dataset.yaml'} not found){hint}")
    for key in ("data.sources", "data.targets"):
        if len({str(n).lower() for n in _get(config, key)}) < len(_get(config, key)):
            raise ConfigError(f"{key}={list(_get(config, key))} names a dataset twice")
    from pinmem.data import dataset_classes
    from pinmem.data.classes import CITYSCAPES, run_classes

    names = [str(n) for n in (*config.data.sources, *config.data.targets)]
    model = config.model
    classes = run_classes([(n, dataset_classes(n, config.dataset_root(n))) for n in names], model.num_classes,
                          model.classes, model.palette)
    model.num_classes = len(classes)  # the data's class set, recorded in the config (and so in checkpoints)
    cityscapes = classes == CITYSCAPES
    model.classes = None if cityscapes else list(classes.names)
    model.palette = None if cityscapes else [list(c) for c in classes.palette]


def _validate_device(device: str) -> None:
    resolve_device(device, option="train.device")  # raises the ConfigError
