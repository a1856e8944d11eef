"""`pinmem predict` and the Python API (`pinmem.load`)."""

import cv2
import numpy as np
import pytest
from eval_support import make_checkpoint, run_cli

import pinmem
from pinmem.data.labels import PALETTE


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


def _write_inputs(folder):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / "a.png"), rng.integers(0, 256, (70, 90, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / "gray.png"), rng.integers(0, 256, (33, 47), dtype=np.uint8))
    cv2.imwrite(str(folder / "rgba.png"), rng.integers(0, 256, (40, 64, 4), dtype=np.uint8))
    cv2.imwrite(str(folder / "deep.png"), rng.integers(0, 65536, (50, 30, 3), dtype=np.uint16))
    cv2.imwrite(str(folder / "photo.jpg"), rng.integers(0, 256, (61, 83, 3), dtype=np.uint8))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    (folder / "notes.txt").write_text("not an image, ignored in folder listings")
    return {"a": (70, 90), "gray": (33, 47), "rgba": (40, 64), "deep": (50, 30), "photo": (61, 83)}


def test_predict_folder_writes_decodable_files_and_names_the_broken_one(tmp_path, checkpoint):
    sizes = _write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(["predict", str(checkpoint), str(tmp_path / "in"), "--out", str(out),
                                    "--memory-map", "--quiet", "--device", "cpu"])
    assert code == 1, stderr
    assert "broken.png" in stderr and "1 input(s) could not be processed" in stderr
    assert "Traceback" not in stderr
    for stem, (h, w) in sizes.items():
        ids = cv2.imread(str(out / f"{stem}_trainid.png"), cv2.IMREAD_UNCHANGED)
        assert ids.shape == (h, w) and ids.dtype == np.uint8 and ids.max() < 19
        for kind in ("color", "overlay", "memory"):
            img = cv2.imread(str(out / f"{stem}_{kind}.png"), cv2.IMREAD_UNCHANGED)
            assert img.shape == (h, w, 3), (stem, kind)
        colours = cv2.imread(str(out / f"{stem}_color.png"))[:, :, ::-1]
        assert np.array_equal(colours, PALETTE[ids])
    assert not list(out.glob("broken*")) and not list(out.glob("notes*"))


def test_predict_globs_collisions_and_missing_inputs(tmp_path, checkpoint):
    rng = np.random.default_rng(1)
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        cv2.imwrite(str(tmp_path / sub / "same.png"), rng.integers(0, 256, (32, 48, 3), dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "x" / "same.jpg"), rng.integers(0, 256, (36, 40, 3), dtype=np.uint8))
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(["predict", str(checkpoint), str(tmp_path / "*" / "same.*"),
                                    str(tmp_path / "nothing.png"), "--out", str(out), "--quiet",
                                    "--mode", "slide", "--crop", "32", "--stride", "24"])
    assert code == 1 and "nothing.png" in stderr
    names = sorted(p.name for p in out.glob("*_trainid.png"))
    assert names == ["same-2_trainid.png", "same-3_trainid.png", "same_trainid.png"]
    sizes = {cv2.imread(str(out / n), cv2.IMREAD_UNCHANGED).shape for n in names}
    assert sizes == {(32, 48), (36, 40)}


def test_predict_nothing_found_is_a_clear_error(tmp_path, checkpoint):
    code, _, stderr = run_cli(["predict", str(checkpoint), str(tmp_path / "*.png"), "--out", str(tmp_path / "o")])
    assert code == 2 and "no images found" in stderr and "Traceback" not in stderr


def test_python_api(checkpoint):
    seg = pinmem.load(checkpoint)
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (45, 77, 3), dtype=np.uint8)
    ids = seg.predict(rgb)
    assert ids.shape == (45, 77) and ids.dtype == np.uint8
    logits = seg.predict_logits(rgb)
    assert logits.shape == (19, 45, 77) and logits.dtype == np.float32
    assert np.array_equal(logits.argmax(0), ids)
    assert seg.memory_map(rgb).shape == (45, 77)
    # gray and RGBA arrays are converted; max_side shrinks the forward but not the output
    assert seg.predict(rgb[:, :, 0]).shape == (45, 77)
    assert seg.predict(np.dstack([rgb, np.full((45, 77), 255, np.uint8)])).shape == (45, 77)
    small = pinmem.load(checkpoint, max_side=32, mode="slide", crop=24, stride=16)
    assert small.predict(rgb).shape == (45, 77)
    with pytest.raises(pinmem.PinmemError, match="H×W×3"):
        seg.predict(np.zeros((4, 4, 5), np.uint8))


def test_python_api_without_config_files(tmp_path, checkpoint, monkeypatch):
    """Only the checkpoint is needed: run from an empty folder with no configs around."""
    monkeypatch.chdir(tmp_path)
    seg = pinmem.load(str(checkpoint), device="cpu")
    assert seg.config.method == "pinmem" and seg.has_memory
