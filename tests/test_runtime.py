"""One helper for the device and autocast, one declaration of the inference settings, one registry per list."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io

import pytest
import torch

from pinmem.errors import ConfigError
from pinmem.evaluation.inference import InferenceSettings
from pinmem.runtime import AMP_DTYPES, AMP_MODES, autocast, model_device, resolve_device


def test_autocast_of_each_amp_mode():
    assert isinstance(autocast("none", "cpu"), contextlib.nullcontext)
    with autocast("bf16", torch.device("cpu")):  # what autocast does, not how a torch version reports it
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with pytest.raises(ConfigError, match="amp must be one of none, bf16, fp16"):
        autocast("fp8", "cpu")
    assert AMP_MODES == tuple(AMP_DTYPES) == ("none", "bf16", "fp16")


def test_device_resolution():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == resolve_device(None).type == expected
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ConfigError, match="device=.gpu0. is not a device"):
        resolve_device("gpu0")
    with pytest.raises(ConfigError, match="train.device='meta' is not a device"):
        resolve_device("meta", option="train.device")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="sees no CUDA device"):
            resolve_device("cuda:1")
    assert model_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert model_device(torch.nn.ReLU()) == torch.device("cpu")


def test_config_choices_come_from_the_registries():
    from pinmem.engine import config
    from pinmem.methods import METHOD_CLASSES
    from pinmem.models import ARCHS, BACKBONES

    assert config.CHOICES["model.arch"] is ARCHS and config.CHOICES["model.backbone"] is BACKBONES
    assert config.CHOICES["train.amp"] is AMP_MODES
    # the method classes sit above the configuration in the layers (tests/test_layers.py), so the config reads
    # the names from the method specs and this test keeps the two equal
    assert config.CHOICES["method"] == config.METHOD_NAMES == tuple(METHOD_CLASSES)


def test_command_line_options_are_built_from_the_settings():
    from pinmem.commands.options import add_inference_options, inference_settings

    parser = argparse.ArgumentParser()
    add_inference_options(parser)
    defaults = inference_settings(parser.parse_args([]))
    assert defaults == InferenceSettings(device="auto")  # the command line's device default: auto
    for spec in dataclasses.fields(InferenceSettings):  # every field has its option
        assert "--" + spec.name.replace("_", "-") in parser.format_help()
    args = parser.parse_args(["--mode", "slide", "--crop", "48", "--stride", "32", "--flip", "--pad",
                              "--batch-size", "3", "--target-bn", "--amp", "bf16", "--device", "cpu", "--channels-last",
                              "--quiet"])
    assert inference_settings(args) == InferenceSettings(mode="slide", flip=True, crop=48, stride=32, pad=True,
                                                         batch_size=3, target_bn=True, amp="bf16", device="cpu",
                                                         channels_last=True)
    with pytest.raises(SystemExit):
        with contextlib.redirect_stderr(io.StringIO()):
            parser.parse_args(["--amp", "fp8"])
