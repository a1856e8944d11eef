"""``pinmem synth``: write the procedural street world in the six datasets' native layouts.

Wire it into a command line with :func:`register`::

    commands = parser.add_subparsers(...)
    register(commands)          # adds `synth`; args.func(args) runs it and returns the exit code
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pinmem.synth.presets import PRESETS, Preset, get_preset
from pinmem.synth.style import Style
from pinmem.synth.style_io import load_style, shipped_styles


def parse_size(text: str) -> tuple[int, int]:
    """``"512x256"`` -> ``(512, 256)`` (width, height)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 512x256 (WIDTHxHEIGHT), not {text!r}") from None
    if width < 8 or height < 8:
        raise argparse.ArgumentTypeError(f"size {text!r} is too small (8x8 at least)")
    return width, height


def register(subparsers: Any) -> None:
    """Add the ``synth`` sub-command to an argparse sub-parsers object."""
    parser = subparsers.add_parser(
        "synth",
        help="generate the procedural multi-domain street world",
        description="Render street scenes in the styles of the paper's domains and write each one in its "
                    "dataset's native layout under OUT/<style>/ (train and val splits). A domain whose "
                    "OUT/<style>/synth.json matches the parameters is skipped. Shipped styles: "
                    + ", ".join(shipped_styles()) + ".",
    )
    parser.add_argument("--out", required=True, help="folder to write <style>/ sub-folders into")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="start from a named parameter set (demo: " + PRESETS["demo"].description + ")")
    parser.add_argument("--styles", nargs="+", metavar="NAME_OR_PATH",
                        help="shipped style names or style YAML files (default: the preset's, all six shipped)")
    parser.add_argument("--num", type=int, default=None, help="train images per style (overrides the preset)")
    parser.add_argument("--val-num", type=int, default=None, help="val images per style (overrides the preset)")
    parser.add_argument("--size", type=parse_size, default=None, metavar="WxH",
                        help="image size before each style's resolution scale (default: the preset's, 512x256)")
    parser.add_argument("--seed", type=int, default=None, help="world seed (default 0)")
    parser.add_argument("--workers", type=int, default=1, help="rendering processes (output does not depend on it)")
    parser.add_argument("--force", action="store_true", help="regenerate even when an up-to-date world is there")
    parser.add_argument("--preview", metavar="PNG", default=None,
                        help="also save a contact sheet of a few scenes per style to this PNG")
    parser.add_argument("--format", choices=("native", "folder"), default="native",
                        help="native: each style in its dataset's layout (default); folder: folder datasets with "
                             "a dataset.yaml (docs/own-data.md)")
    parser.add_argument("--classes", choices=("cityscapes", "categories"), default="cityscapes",
                        help="with --format folder: the 19 Cityscapes classes as train_ids labels (default), or the "
                             "7 Cityscapes categories (flat ... vehicle) as palette-encoded RGB labels")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


@dataclass(frozen=True)
class SynthPlan:
    styles: list[Style]
    num_train: dict[str, int]
    num_val: dict[str, int]
    size: tuple[int, int]
    seed: int


def _preset_count(counts: dict[str, int], style: Style, fallback: int) -> int:
    return counts.get(style.name, counts.get(style.format, fallback))


def resolve(args: argparse.Namespace) -> SynthPlan:
    """The styles, counts, size and seed from the arguments on top of the preset (``default`` if none)."""
    preset: Preset = get_preset(args.preset or "default")
    styles = [load_style(s) for s in (args.styles or preset.styles)]
    num_train = {s.name: args.num if args.num is not None else _preset_count(preset.num_train, s, 100)
                 for s in styles}
    num_val = {s.name: args.val_num if args.val_num is not None else _preset_count(preset.num_val, s, 50)
               for s in styles}
    return SynthPlan(styles, num_train, num_val, args.size or preset.size,
                     args.seed if args.seed is not None else preset.seed)


def run(args: argparse.Namespace) -> int:
    from pinmem.synth.world import generate_world

    plan = resolve(args)
    roots = generate_world(args.out, plan.styles, plan.num_train, plan.num_val, plan.size, plan.seed,
                           workers=max(1, args.workers), progress=not args.quiet, force=args.force,
                           folder_classes=args.classes if getattr(args, "format", "native") == "folder" else None)
    for style in plan.styles:
        fmt = f"folder/{args.classes}" if getattr(args, "format", "native") == "folder" else style.format
        print(f"{style.name:<11s} {fmt:<11s} {plan.num_train[style.name]:>6d} train "
              f"{plan.num_val[style.name]:>5d} val  {roots[style.name]}")
    if args.preview:
        from pinmem.synth.preview import save_contact_sheet

        path = save_contact_sheet(args.preview, plan.styles, seed=plan.seed)
        print(f"contact sheet: {Path(path)}")
    return 0
