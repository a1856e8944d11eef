"""Fingerprint of what evaluation, prediction (and, with ``--training``, training) compute, to check a refactor
bit for bit.

Writes the six example datasets (:mod:`pinmem.data.examples`, 256×128) and a random-weight ResNet-18 Pin the
Memory checkpoint into ``--work``, then records SHA-256 digests of the exact bytes of

* ``evaluate()``'s confusion matrices on the cityscapes and bdd100k examples in several settings (whole, slide with
  flip, slide with padding, target BN, batches of several images),
* ``infer()``'s logits and memory similarities for one batch,
* ``pinmem.load(...)``'s trainIds, logits and memory maps (``max_side`` too),
* ``pinmem eval --json`` (without its timings and paths) and the PNGs of ``pinmem predict``,
* with ``--training``: the weights after two iterations of ``erm`` and ``pinmem`` (ResNet-18, 64² crops, AMP
  ``none`` and ``bf16``) and their final validation's confusion matrix,

and writes them as JSON. Run it before and after a change and compare the files::

    python benchmarks/fingerprint.py --training --out /tmp/before.json
    ...change the code...
    python benchmarks/fingerprint.py --training --out /tmp/after.json && cmp /tmp/before.json /tmp/after.json

Every call uses keyword arguments only, so it runs on the code before and after an API change. One thread, CPU;
about 40 s, 2 minutes with ``--training`` on the 2-core development machine.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pinmem  # noqa: E402
from pinmem.cli import main as cli_main  # noqa: E402
from pinmem.data import build_dataset  # noqa: E402
from pinmem.data.examples import write_examples  # noqa: E402
from pinmem.data.transforms import normalize  # noqa: E402
from pinmem.engine.config import load_config, model_kwargs, to_dict  # noqa: E402
from pinmem.evaluation import evaluate, infer  # noqa: E402
from pinmem.models import build_model  # noqa: E402
from pinmem.training.checkpoint import load_model, save_checkpoint  # noqa: E402

#: evaluate() settings fingerprinted (keyword arguments)
EVAL_SETTINGS: dict[str, dict[str, Any]] = {
    "whole": {},
    "whole_batch3": {"batch_size": 3},
    "slide_flip": {"mode": "slide", "crop": 96, "stride": 64, "flip": True, "batch_size": 2},
    "slide_pad": {"mode": "slide", "crop": 160, "stride": 100, "pad": True},
    "target_bn_batch2": {"target_bn": True, "batch_size": 2},
    "bf16": {"amp": "bf16"},
}
INFER_SETTINGS: dict[str, dict[str, Any]] = {
    "whole": {},
    "whole_flip": {"flip": True},
    "slide": {"mode": "slide", "crop": 96, "stride": 48, "batch_size": 3},
    "slide_pad_flip": {"mode": "slide", "crop": 160, "stride": 100, "pad": True, "flip": True},
}


def digest(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().contiguous().numpy()
    if isinstance(value, np.ndarray):
        value = np.ascontiguousarray(value).tobytes() + str((value.dtype, value.shape)).encode()
    if isinstance(value, str):
        value = value.encode()
    return hashlib.sha256(value).hexdigest()


def make_checkpoint(path: Path) -> Path:
    cfg = load_config(None, ["model.backbone=resnet18", "method=pinmem"])
    torch.manual_seed(0)
    model = build_model(**model_kwargs(cfg))
    model.memory.slots.copy_(torch.nn.functional.normalize(torch.randn_like(model.memory.slots), dim=1))
    save_checkpoint(path, {"config": to_dict(cfg), "model": model.state_dict(), "iteration": 7})
    return path


def _strip(node: Any) -> Any:
    """A results JSON without what changes from run to run (timings) or place to place (paths)."""
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if k not in ("seconds", "checkpoint", "root")}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def fingerprint(work: Path) -> dict[str, Any]:
    roots = write_examples(work / "data", num_train=1, num_val=4)
    checkpoint = make_checkpoint(work / "tiny.pt")
    model = load_model(checkpoint).model
    out: dict[str, Any] = {}
    for dataset_name in ("cityscapes", "bdd100k"):
        dataset = build_dataset(dataset_name, roots[dataset_name], "val")
        for key, kwargs in EVAL_SETTINGS.items():
            result = evaluate(model, dataset, name=dataset_name, **kwargs)
            out[f"evaluate/{dataset_name}/{key}/confusion"] = digest(result.confusion.matrix)
            out[f"evaluate/{dataset_name}/{key}/miou"] = repr(result.miou)
            out[f"evaluate/{dataset_name}/{key}/settings"] = result.to_dict()["description"]
    dataset = build_dataset("cityscapes", roots["cityscapes"], "val")
    images = torch.stack([dataset[i]["image"] for i in range(2)])
    model.eval()
    for key, kwargs in INFER_SETTINGS.items():
        result = infer(model, images, with_memory=True, **kwargs)
        out[f"infer/{key}/logits"] = digest(result.logits)
        out[f"infer/{key}/cosine"] = digest(result.cosine)
    rgb = (np.random.default_rng(0).random((150, 230, 3)) * 255).astype(np.uint8)
    for key, kwargs in {"whole": {}, "slide_flip": {"mode": "slide", "crop": 96, "stride": 64, "flip": True},
                        "max_side": {"max_side": 100}}.items():
        segmenter = pinmem.load(checkpoint, **kwargs)
        out[f"segmenter/{key}/predict"] = digest(segmenter.predict(rgb))
        out[f"segmenter/{key}/logits"] = digest(segmenter.predict_logits(rgb))
        out[f"segmenter/{key}/memory_map"] = digest(segmenter.memory_map(rgb))
    out["normalize"] = digest(normalize(rgb))
    json_path = work / "eval.json"
    argv = ["eval", str(checkpoint), "--dataset", "cityscapes", "--root", str(roots["cityscapes"]), "--dataset",
            "bdd100k", "--root", str(roots["bdd100k"]), "--mode", "slide", "--crop", "96", "--stride", "64",
            "--flip", "--device", "cpu", "--workers", "0", "--quiet", "--json", str(json_path)]
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli_main(argv)
    out["cli/eval/exit"] = code
    out["cli/eval/json"] = digest(json.dumps(_strip(json.loads(json_path.read_text())), sort_keys=True))
    predictions = work / "predictions"
    argv = ["predict", str(checkpoint), str(roots["cityscapes"] / "leftImg8bit" / "val"), "--recursive", "--out",
            str(predictions), "--memory-map", "--device", "cpu", "--quiet"]
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli_main(argv)
    out["cli/predict/exit"] = code
    for png in sorted(predictions.glob("*.png")):
        out[f"cli/predict/{png.name}"] = digest(png.read_bytes())
    return out


#: state-dict names renamed between versions (pinmem.training.checkpoint.RENAMED_PREFIXES), written out here so that
#: the script compares the weights of code from before a rename with code from after it
RENAMED_PREFIXES = {"memory.update.": "memory.update_net."}


def renamed(key: str) -> str:
    for old, new in RENAMED_PREFIXES.items():
        if key.startswith(old):
            return new + key[len(old):]
    return key


def training_fingerprint(work: Path) -> dict[str, Any]:
    """Two iterations of erm and pinmem, AMP none and bf16: the weights and the final validation's matrix."""
    from pinmem.training.trainer import Trainer

    roots = write_examples(work / "train_data", num_train=4, num_val=2, size=(96, 64))
    root = roots["gtav"].parent
    out: dict[str, Any] = {}
    for amp in ("none", "bf16"):
        for method in ("erm", "pinmem"):
            run = work / f"run_{method}_{amp}"
            cfg = load_config(None, [f"method={method}", "model.backbone=resnet18", f"data.root={root}",
                                     "data.sources=[gtav,synthia]", "data.targets=[cityscapes]",
                                     "train.iterations=2", "train.batch_per_domain=2", "train.crop_size=64",
                                     "data.num_workers=0", f"train.amp={amp}", "train.device=cpu",
                                     "train.progress=false", "data.epoch_length=4", "pinmem.init_images=4",
                                     f"train.out_dir={run}"])
            results = Trainer(cfg).fit()
            state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]
            weights = hashlib.sha256()
            state = {renamed(k): v for k, v in state.items()}
            for key in sorted(state):
                weights.update(key.encode() + digest(state[key]).encode())
            out[f"train/{method}/{amp}/weights"] = weights.hexdigest()
            out[f"train/{method}/{amp}/val_confusion"] = digest(results["cityscapes"].confusion.matrix)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the JSON file of digests to write")
    parser.add_argument("--work", default="runs/fingerprint", help="folder for the data and checkpoints")
    parser.add_argument("--training", action="store_true", help="also two training iterations per method and AMP")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result = fingerprint(Path(args.work))
    if args.training:
        result.update(training_fingerprint(Path(args.work)))
    Path(args.out).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"{len(result)} digests written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
