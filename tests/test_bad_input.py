"""Bad input at the edges: configs, checkpoints, photos, dataset roots (docs/reliability.md)."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from eval_support import make_checkpoint, run_cli
from PIL import Image, ImageOps

import pinmem
from pinmem.cli import main
from pinmem.data import build_dataset
from pinmem.data.io import ImageTooLargeError, read_image
from pinmem.engine.config import load_config
from pinmem.errors import DatasetLayoutError

# -- configuration -------------------------------------------------------------------------------------------

BAD_VALUES = [
    ("train.iterations=abc", ["train.iterations='abc'", "integer"]),
    ("train.lr=fast", ["train.lr='fast'", "number"]),
    ("train.crop_size=0", ["train.crop_size=0", "positive"]),
    ("train.batch_per_domain=-2", ["train.batch_per_domain=-2", "positive"]),
    ("model.num_classes=0", ["model.num_classes=0", "positive"]),
    ("pinmem.temperature=0", ["pinmem.temperature=0.0", "positive"]),
    ("train.momentum=-0.5", ["train.momentum=-0.5", "zero or positive"]),
    ("method=pinmen", ["method='pinmen'", "erm, ibn, isw, mldg, pinmem", "did you mean 'pinmem'"]),
    ("model.backbone=resnet51", ["model.backbone='resnet51'", "resnet18, resnet34", "did you mean 'resnet50'"]),
    ("model.arch=unet", ["model.arch='unet'", "deeplabv3plus, deeplabv2"]),
    ("train.amp=fp32", ["train.amp='fp32'", "none, bf16, fp16"]),
    ("train.progress=maybe", ["train.progress='maybe'", "true or false"]),
    ("data.sources=gtav", ["data.sources=gtav", "a list"]),
    ("data.sources=[gtav,kitti]", ["data.sources", "'kitti'", "gtav, synthia, cityscapes"]),
    ("train.device=tpu", ["train.device='tpu'", "auto, cpu, cuda"]),
]


@pytest.mark.parametrize(("override", "words"), BAD_VALUES, ids=[o for o, _ in BAD_VALUES])
def test_a_bad_config_value_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, override, words):
    out = tmp_path / "run"
    assert main(["train", override, f"train.out_dir={out}", f"data.root={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert all(word in err for word in words), (words, err)
    assert not out.exists()


def test_a_missing_dataset_root_writes_nothing_to_out_dir(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", f"train.out_dir={out}", f"data.root={tmp_path / 'nowhere'}", "train.device=cpu"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "nowhere" in err, err
    assert not out.exists()


def test_amp_takes_the_booleans_users_write(tmp_path):
    assert load_config(None, ["train.amp=false"]).train.amp == "none"
    assert load_config(None, ["train.amp=true"]).train.amp == "bf16"
    assert load_config(None, ["train.amp=BF16"]).train.amp == "bf16"
    yaml_file = tmp_path / "c.yaml"
    for text, amp in (("train:\n  amp: false\n", "none"), ("train:\n  amp: true\n", "bf16"),
                      ("train:\n  amp: off\n", "none")):
        yaml_file.write_text(text)
        assert load_config(yaml_file).train.amp == amp, text


def test_a_yaml_type_error_names_the_file_and_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  iterations: many\n")
    assert main(["train", "--config", str(bad), f"train.out_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(bad) in err and "train.iterations='many' is not an integer" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


# -- checkpoints -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    base = tmp_path_factory.mktemp("ckpts")
    good = make_checkpoint(base / "r18.pt")
    other = torch.load(make_checkpoint(base / "tmp.pt", backbone="resnet34", num_classes=7),
                       weights_only=True)
    other["config"] = torch.load(good, weights_only=True)["config"]  # a resnet18/19-class config, other weights
    torch.save(other, base / "foreign.pt")
    newer = torch.load(good, weights_only=True)
    newer["version"] = 99
    torch.save(newer, base / "newer.pt")
    newer["version"] = "2.0"
    torch.save(newer, base / "newer_text.pt")
    return base


def _commands(ckpt: Path, tmp_path: Path, root: Path) -> list[list[str]]:
    return [["eval", str(ckpt), "--dataset", "cityscapes", "--root", str(root), "--quiet", "--device", "cpu"],
            ["predict", str(ckpt), str(tmp_path), "--out", str(tmp_path / "o"), "--device", "cpu"],
            ["export", str(ckpt), "--out", str(tmp_path / "m.onnx")]]


def test_a_checkpoint_of_another_model_lists_what_differs(tmp_path, checkpoints, write_dataset):
    root = write_dataset("cityscapes", counts={"val": 1}).root
    for argv in _commands(checkpoints / "foreign.pt", tmp_path, root):
        code, _, err = run_cli(argv)
        assert code == 2 and "Traceback" not in err and "size mismatch" not in err, (argv, err)
        assert "model.backbone is resnet18 in its configuration but resnet34 in its weights" in err, err
        assert "model.num_classes is 19 in its configuration but 7 in its weights" in err, err
    with pytest.raises(pinmem.PinmemError, match="model.backbone is resnet18"):
        pinmem.load(checkpoints / "foreign.pt")


def test_a_checkpoint_of_a_newer_format_says_so(tmp_path, checkpoints, write_dataset):
    root = write_dataset("cityscapes", counts={"val": 1}).root
    for name in ("newer.pt", "newer_text.pt"):
        for argv in _commands(checkpoints / name, tmp_path, root):
            code, _, err = run_cli(argv)
            assert code == 2 and "newer pinmem" in err and "reads format versions up to 1" in err, (argv, err)


def test_a_checkpoint_with_the_old_name_of_u_still_loads(tmp_path, checkpoints):
    """Checkpoints written before U was renamed (``memory.update.*`` → ``memory.update_net.*``) load unchanged."""
    from pinmem.training.checkpoint import load_model

    data = torch.load(checkpoints / "r18.pt", weights_only=True)
    renamed = [k for k in data["model"] if k.startswith("memory.update_net.")]
    assert renamed, "the test checkpoint has no update network"
    data["model"] = {k.replace("memory.update_net.", "memory.update."): v for k, v in data["model"].items()}
    torch.save(data, tmp_path / "old.pt")
    old = load_model(tmp_path / "old.pt").model
    new = load_model(checkpoints / "r18.pt").model
    assert list(old.state_dict()) == list(new.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(old.state_dict().values(), new.state_dict().values(), strict=True))


def test_resuming_with_another_model_lists_the_settings(tmp_path, checkpoints, capsys):
    out = tmp_path / "run"
    argv = ["train", "--resume", str(checkpoints / "r18.pt"), "model.backbone=resnet34", "model.arch=deeplabv2",
            f"train.out_dir={out}", f"data.root={tmp_path}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "model.backbone=resnet34 (the checkpoint has resnet18)" in err, err
    assert "model.arch=deeplabv2 (the checkpoint has deeplabv3plus)" in err and "Traceback" not in err
    assert not out.exists()
    # a class count the data contradict (gtav and synthia have the 19 Cityscapes classes) is refused before that
    assert main([*argv[:4], "model.num_classes=7", *argv[5:]]) == 2
    err = capsys.readouterr().err.strip()
    assert "model.num_classes=7 contradicts the data" in err and len(err.splitlines()) == 1, err
    assert not out.exists()


# -- pinmem predict on odd files -------------------------------------------------------------------------------

def _smooth(height: int, width: int, seed: int = 0) -> np.ndarray:
    small = np.random.default_rng(seed).integers(0, 256, (3, 4, 3)).astype(np.float32)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.uint8)


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose valid IHDR chunk claims ``width``×``height``, followed by an empty IDAT: no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", b"")


def test_predict_converts_odd_images_turns_photos_upright_and_skips_what_it_cannot_read(tmp_path, checkpoints):
    src = tmp_path / "in"
    src.mkdir()
    rgb = _smooth(30, 44)
    Image.fromarray(rgb).convert("CMYK").save(src / "cmyk.jpg", quality=95)
    Image.fromarray(rgb).save(src / "rotated.jpg", quality=95, exif=_exif(6))  # stored 44 wide, shown 30 wide
    cv2.imwrite(str(src / "gray16.png"), (np.arange(30 * 44, dtype=np.uint16).reshape(30, 44) * 40))
    Image.fromarray(np.dstack([rgb[:, :, 0], rgb[:, :, 1]]), mode="LA").save(src / "gray_alpha.png")
    cv2.imwrite(str(src / "rgba16.png"), np.dstack([rgb, rgb[:, :, :1]]).astype(np.uint16) * 257)
    cv2.imwrite(str(src / "big.png"), _smooth(60, 80))
    (src / "huge.png").write_bytes(_png_header(200_000, 100_000))  # 20 gigapixels claimed by the header
    (src / "text.jpg").write_text("not a photo")
    code, _, err = run_cli(["predict", str(checkpoints / "r18.pt"), str(src), "--out", str(tmp_path / "o"),
                            "--quiet", "--device", "cpu", "--max-pixels", "4000"])
    assert code == 1 and "Traceback" not in err, err
    assert "3 input(s) could not be processed" in err
    assert f"{src / 'big.png'} is 80×60" in err and "above the limit of 0.0 megapixels" in err
    assert f"{src / 'huge.png'} is" in err and "text.jpg" in err
    sizes = {p.name: cv2.imread(str(p), cv2.IMREAD_UNCHANGED).shape for p in (tmp_path / "o").glob("*_trainid.png")}
    assert sizes == {"cmyk_trainid.png": (30, 44), "rotated_trainid.png": (44, 30), "gray16_trainid.png": (30, 44),
                     "gray_alpha_trainid.png": (30, 44), "rgba16_trainid.png": (30, 44)}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_image_viewers_do(tmp_path, orientation):
    rgb = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(path, exif=_exif(orientation))
    with Image.open(path) as im:
        upright = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert np.array_equal(read_image(path, orient=True), upright)
    assert np.array_equal(read_image(path), rgb)  # datasets read pixels as stored, like their labels


def test_a_huge_header_is_refused_before_decoding(tmp_path, checkpoints):
    path = tmp_path / "huge.png"
    path.write_bytes(_png_header(200_000, 100_000))
    with pytest.raises(ImageTooLargeError, match=r"huge.png is 20000.0 megapixels, above the limit"):
        read_image(path)
    path.write_bytes(_png_header(12_000, 10_000))
    with pytest.raises(ImageTooLargeError, match=r"huge.png is 12000×10000 \(120.0 megapixels\), above the limit "
                                                 r"of 100.0 megapixels; shrink it or raise the limit"):
        read_image(path, max_pixels=100_000_000)
    segmenter = pinmem.load(checkpoints / "r18.pt", max_pixels=1000)
    with pytest.raises(ImageTooLargeError, match="above the limit of 1000 pixels"):
        segmenter.predict(_smooth(40, 30))


def test_predict_on_empty_folders_non_images_and_a_file_as_output(tmp_path, checkpoints):
    empty, notes = tmp_path / "empty", tmp_path / "notes"
    empty.mkdir()
    notes.mkdir()
    (notes / "readme.txt").write_text("no images here")
    for folder in (empty, notes):
        code, _, err = run_cli(["predict", str(checkpoints / "r18.pt"), str(folder), "--out", str(tmp_path / "o")])
        assert code == 2 and "no images found" in err and str(folder) in err, err
    code, _, err = run_cli(["predict", str(checkpoints / "r18.pt"), str(notes / "readme.txt"), "--out",
                            str(tmp_path / "o"), "--quiet"])
    assert code == 1 and f"cannot decode image {notes / 'readme.txt'}" in err
    cv2.imwrite(str(empty / "a.png"), _smooth(20, 20))
    (tmp_path / "file").write_text("")
    code, _, err = run_cli(["predict", str(checkpoints / "r18.pt"), str(empty), "--out", str(tmp_path / "file")])
    assert code == 2 and "is not a folder" in err


def test_strip_upsampling_bounds_memory_and_matches_one_interpolation():
    from pinmem.segmenter import upsample_argmax

    logits = torch.randn(1, 19, 23, 31, generator=torch.Generator().manual_seed(0))
    whole = torch.nn.functional.interpolate(logits, size=(181, 247), mode="bilinear", align_corners=True)
    expected = whole[0].argmax(0).numpy()
    strips = upsample_argmax(logits, (181, 247), strip_pixels=1000)  # 4 rows per strip
    assert strips.shape == (181, 247) and strips.dtype == np.uint8
    assert (strips != expected).mean() < 1e-3  # rounding at near-ties only
    assert np.array_equal(upsample_argmax(logits, (181, 247)), expected)  # one strip: the same call


# -- datasets ----------------------------------------------------------------------------------------------------

def test_gtav_flat_release_with_robustnet_split_lists(write_dataset):
    written = write_dataset("gtav", counts={"train": 3, "val": 2, "test": 1})
    root = written.root
    (root / "split.mat").unlink()
    (root / "gtav_split_train.txt").write_text("00001.png\n00003.png\n")  # filtered: frame 2 left out
    (root / "gtav_split_val.txt").write_text("00004.png\n00005.png\n")
    train = build_dataset("gtav", root, "train")
    assert [p.name for p, _ in train.files] == ["00001.png", "00003.png"]
    assert len(build_dataset("gtav", root, "val")) == 2
    with pytest.raises(DatasetLayoutError, match="gtav_split_test.txt is missing"):
        build_dataset("gtav", root, "test")
    (root / "split_data").mkdir()
    for name in ("gtav_split_train.txt", "gtav_split_val.txt"):
        (root / name).rename(root / "split_data" / name)
    assert len(build_dataset("gtav", root, "train")) == 2


ROOTS = {"gtav": "images", "synthia": "RGB", "cityscapes": "leftImg8bit", "bdd100k": "images",
         "mapillary": "training", "idd": "gtFine"}


@pytest.mark.parametrize("name", sorted(ROOTS))
def test_a_root_one_level_off_gets_a_did_you_mean(write_dataset, name):
    root = write_dataset(name, counts={"train": 1}).root
    with pytest.raises(DatasetLayoutError, match=f"one level too high for {name}: did you mean {root}"):
        build_dataset(name, root.parent, "train")
    with pytest.raises(DatasetLayoutError, match=f"one level too low for {name}: did you mean {root}"):
        build_dataset(name, root / ROOTS[name], "train")
    if name == "cityscapes":
        with pytest.raises(DatasetLayoutError, match=f"2 levels too low for {name}: did you mean {root}"):
            build_dataset(name, root / "leftImg8bit" / "train", "train")


# -- determinism ---------------------------------------------------------------------------------------------

def test_synth_with_the_same_arguments_writes_the_same_bytes(tmp_path, monkeypatch):
    argv = ["synth", "--num", "2", "--val-num", "1", "--size", "64x32", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    now = time.time()  # the second run happens "a year later": nothing may depend on the clock
    monkeypatch.setattr(time, "time", lambda: now + 3.2e7)
    monkeypatch.setattr(time, "asctime", lambda *a: "Mon Jan  1 00:00:00 2035")
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    files = {p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()}
    assert files == {p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file()}
    assert Path("gtav/split.mat") in files and len(files) > 40
    differ = [str(f) for f in sorted(files) if (tmp_path / "a" / f).read_bytes() != (tmp_path / "b" / f).read_bytes()]
    assert not differ, differ
    with Image.open(tmp_path / "a" / "gtav" / "labels" / "00001.png") as im:
        assert "tIME" not in str(im.info) and not any(k.lower().startswith("date") for k in im.info)
    assert io.BytesIO((tmp_path / "a" / "gtav" / "split.mat").read_bytes()).read(116).rstrip().endswith(b"pinmem")


# -- random and damaged bytes (hypothesis) ---------------------------------------------------------------------

def _seed_files() -> list[bytes]:
    """Valid encodings of the kinds the readers meet: PNG 8/16-bit, gray, RGBA, palette, JPEG, CMYK, TIFF, BMP."""
    rgb = _smooth(12, 16)
    seeds = [cv2.imencode(ext, array)[1].tobytes() for ext, array in (
        (".png", rgb), (".png", rgb[:, :, 0]), (".png", rgb.astype(np.uint16) * 257), (".png", np.dstack([rgb, rgb])
                                                                                        [:, :, :4]),
        (".jpg", rgb), (".tiff", rgb), (".bmp", rgb))]
    for mode, image in (("P", Image.fromarray(rgb[:, :, 0] % 34, mode="L").convert("P")),
                        ("CMYK", Image.fromarray(rgb).convert("CMYK"))):
        buffer = io.BytesIO()
        image.save(buffer, "PNG" if mode == "P" else "JPEG")
        seeds.append(buffer.getvalue())
    return seeds


@pytest.fixture(scope="module")
def decoders(tmp_path_factory):
    """Every image reader and every dataset's label decoder, as ``(name, function(path))``."""
    from pinmem.data.gtav import read_split_mat
    from pinmem.data.io import read_label_indices, read_unchanged
    from pinmem.data.writers import build_writer

    base = tmp_path_factory.mktemp("decoders")
    found = [("read_image", read_image), ("read_image(orient)", lambda p: read_image(p, orient=True)),
             ("read_unchanged", read_unchanged), ("read_label_indices", read_label_indices),
             ("gtav split.mat", read_split_mat)]
    for name in ROOTS:
        writer = build_writer(name, base / name)
        writer.write("train", _smooth(8, 8), np.zeros((8, 8), dtype=np.uint8))
        writer.finish()
        found.append((f"{name} label", build_dataset(name, base / name, "train").decode_label))
    return base, found


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about corrupt EXIF before it raises
def test_random_and_damaged_bytes_raise_an_error_naming_the_file(decoders):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    base, functions = decoders
    seeds = _seed_files()
    path = base / "sample.png"

    @st.composite
    def damaged(draw: st.DrawFn) -> bytes:
        kind = draw(st.sampled_from(["random", "truncated", "flipped"]))
        if kind == "random":
            return draw(st.binary(max_size=600))
        seed = draw(st.sampled_from(seeds))
        cut = draw(st.integers(0, len(seed) - 1))
        if kind == "truncated":
            return seed[:cut]
        return seed[:cut] + bytes([seed[cut] ^ draw(st.integers(1, 255))]) + seed[cut + 1:]

    @settings(max_examples=120, deadline=None, database=None)
    @given(damaged())
    def check(data: bytes) -> None:
        path.write_bytes(data)
        for name, function in functions:
            try:
                out = function(path)
            except pinmem.PinmemError as err:
                assert str(path) in str(err), (name, str(err))
                continue
            if name.endswith(" label"):  # decoded after all: it must be a label map
                assert isinstance(out, np.ndarray) and out.ndim == 2 and out.dtype == np.uint8, name

    check()
