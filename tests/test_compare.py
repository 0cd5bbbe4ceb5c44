"""`avatar compare`: PSNR and SSIM against independent float64 references written from the
published formulas, known values, masks and alpha composited as GaussianAvatars does, bad input."""
import json
import math

import imageio.v3 as iio
import numpy as np
import pytest

from avatar_app.cli import main
from avatar_app.compare import psnr, ssim


def reference_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Wang, Bovik, Sheikh, Simoncelli 2004, eqs. (13)-(16) with the 11×11 circular-symmetric
    Gaussian weighting (σ 1.5, normalised to unit sum), K1 0.01, K2 0.03, L 1, evaluated window
    by window wherever the window lies inside the image, averaged (MSSIM), then over channels."""
    size, sigma = 11, 1.5
    offsets = np.arange(size) - size // 2
    w = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * sigma**2))
    w /= w.sum()
    c1, c2 = 0.01**2, 0.03**2
    per_channel = []
    for ch in range(a.shape[2]):
        values = []
        for i in range(a.shape[0] - size + 1):
            for j in range(a.shape[1] - size + 1):
                x, y = a[i:i + size, j:j + size, ch], b[i:i + size, j:j + size, ch]
                mx, my = (w * x).sum(), (w * y).sum()
                sx2, sy2 = (w * (x - mx) ** 2).sum(), (w * (y - my) ** 2).sum()
                sxy = (w * (x - mx) * (y - my)).sum()
                values.append((2 * mx * my + c1) * (2 * sxy + c2) / ((mx**2 + my**2 + c1) * (sx2 + sy2 + c2)))
        per_channel.append(np.mean(values))
    return float(np.mean(per_channel))


def test_ssim_equals_the_papers_formula_window_by_window():
    rng = np.random.default_rng(0)
    a = rng.random((19, 24, 3))
    b = np.clip(0.7 * a + 0.3 * rng.random((19, 24, 3)), 0, 1)       # correlated, not equal
    assert ssim(a, b) == pytest.approx(reference_ssim(a, b), abs=1e-12)
    smooth = np.cumsum(rng.random((30, 17, 3)), axis=0) / 30
    assert ssim(smooth, smooth[::-1].copy()) == pytest.approx(reference_ssim(smooth, smooth[::-1]), abs=1e-12)


def test_known_values():
    rng = np.random.default_rng(1)
    image = rng.random((16, 20, 3))
    assert psnr(image, image) == math.inf and ssim(image, image) == pytest.approx(1.0, abs=1e-12)
    # constant images: no variance, so SSIM is the luminance term alone
    a, b = np.full((16, 16, 3), 0.2), np.full((16, 16, 3), 0.6)
    c1 = 0.01**2
    assert ssim(a, b) == pytest.approx((2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1), rel=1e-12)
    assert psnr(a, b) == pytest.approx(10 * math.log10(1 / 0.4**2), rel=1e-12)


def write(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, image)
    return path


def compare_json(capsys, *args):
    assert main(["compare", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_identical_and_noisy_copies(tmp_path, capsys):
    rng = np.random.default_rng(2)
    clean = rng.uniform(0.3, 0.7, size=(64, 80, 3))                   # no clipping of the noise below
    sigma = 0.05
    for folder, image in (("pred", clean), ("same", clean), ("noisy", clean + rng.normal(0, sigma, clean.shape))):
        write(tmp_path / folder / "a" / "x.png", (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8))
    same = compare_json(capsys, tmp_path / "pred", tmp_path / "same")
    assert same["images"][0]["name"] == "a/x"
    assert same["images"][0]["psnr"] == "inf" and same["overall"]["psnr"] == "inf"
    assert same["overall"]["ssim"] == pytest.approx(1.0, abs=1e-12) and same["overall"]["images"] == 1
    noisy = compare_json(capsys, tmp_path / "pred", tmp_path / "noisy")
    assert noisy["images"][0]["psnr"] == pytest.approx(20 * math.log10(1 / sigma), abs=0.25)   # 26.02 dB
    variance = 0.4**2 / 12                                            # of the uniform pixels
    # independent pixels: the structure term alone, ≈ 2·var / (var + var + σ²) (C2 is tiny)
    assert noisy["overall"]["ssim"] == pytest.approx(2 * variance / (2 * variance + sigma**2), abs=0.02)
    assert main(["compare", str(tmp_path / "pred"), str(tmp_path / "same"), "-q"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["a/x", "inf", "1.0000"] and out[-1].split()[-2:] == ["inf", "1.0000"]


def test_pairs_by_name_across_extensions_and_sorts(tmp_path, capsys):
    rng = np.random.default_rng(3)
    images = [(rng.random((20, 20, 3)) * 255).astype(np.uint8) for _ in range(2)]
    write(tmp_path / "pred" / "b.png", images[1])
    write(tmp_path / "pred" / "a.png", images[0])
    write(tmp_path / "gt" / "a.png", images[0])
    write(tmp_path / "gt" / "b.PNG", images[1])
    (tmp_path / "pred" / ".avatar-output").touch()                    # our mark is not an image
    report = compare_json(capsys, tmp_path / "pred", tmp_path / "gt")
    assert [entry["name"] for entry in report["images"]] == ["a", "b"]
    assert all(entry["psnr"] == "inf" for entry in report["images"])


def dataset(tmp_path, frames):
    path = tmp_path / "data" / "transforms_test.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    common = {"transform_matrix": np.eye(4).tolist(), "w": 24, "h": 20, "fl_x": 30.0, "fl_y": 30.0, "cx": 12.0,
              "cy": 10.0}
    path.write_text(json.dumps({"frames": [{**common, **frame} for frame in frames]}))
    return path


def test_masks_put_the_capture_on_the_renders_background(tmp_path, capsys):
    """A VHAP capture (its own backdrop) with its fg_mask: composited onto black, the capture
    equals the render made on black, where without the mask it does not."""
    rng = np.random.default_rng(4)
    face = rng.uniform(0.2, 0.9, size=(20, 24, 3))
    mask = np.zeros((20, 24))
    mask[4:16, 5:19] = 1.0
    mask[4, 5:19] = 0.4                                               # a soft edge row
    backdrop = np.array([0.3, 0.8, 0.5])
    render = face * mask[..., None]                                   # on black
    capture = face * mask[..., None] + backdrop * (1 - mask[..., None])
    q = lambda image: (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)  # noqa: E731
    write(tmp_path / "out" / "images" / "00000_00.png", q(render))
    write(tmp_path / "data" / "images" / "00000_00.png", q(capture))
    write(tmp_path / "data" / "fg_masks" / "00000_00.png", q(mask))
    transforms = dataset(tmp_path, [{"file_path": "images/00000_00.png", "fg_mask_path": "fg_masks/00000_00.png"}])
    masked = compare_json(capsys, tmp_path / "out", tmp_path / "data", "--dataset", transforms, "--background", "black")
    expected_truth = q(capture) / 255 * (q(mask) / 255)[..., None]    # truth·m + black·(1 − m)
    assert masked["images"][0]["psnr"] == pytest.approx(psnr(q(render) / 255, expected_truth), rel=1e-9)
    assert masked["images"][0]["psnr"] > 30 and masked["images"][0]["mask"].endswith("fg_masks/00000_00.png")
    plain = compare_json(capsys, tmp_path / "out" / "images", tmp_path / "data" / "images")
    assert plain["images"][0]["psnr"] < 15


def test_alpha_is_composited_onto_the_background(tmp_path, capsys):
    rng = np.random.default_rng(5)
    rgb = (rng.random((16, 16, 3)) * 255).astype(np.uint8)
    alpha = np.where(np.arange(16)[:, None] < 8, 255, 0).repeat(16, 1).astype(np.uint8)
    on_white = np.where(alpha[..., None] == 255, rgb, 255).astype(np.uint8)
    write(tmp_path / "pred" / "x.png", on_white)
    write(tmp_path / "gt" / "x.png", np.dstack([rgb, alpha]))
    assert compare_json(capsys, tmp_path / "pred", tmp_path / "gt")["images"][0]["psnr"] == "inf"


@pytest.mark.parametrize("case", ["sizes", "unreadable", "missing_gt", "missing_pred", "dataset_missing", "mask_size"])
def test_bad_input_gets_one_clear_line(tmp_path, capsys, case):
    image = np.zeros((20, 24, 3), np.uint8)
    write(tmp_path / "pred" / "images" / "00000_00.png", image)
    write(tmp_path / "gt" / "images" / "00000_00.png", image)
    args, needle = [tmp_path / "pred", tmp_path / "gt"], None
    if case == "sizes":
        write(tmp_path / "gt" / "images" / "00000_00.png", np.zeros((20, 26, 3), np.uint8))
        needle = "same size"
    elif case == "unreadable":
        (tmp_path / "gt" / "images" / "00000_00.png").write_text("not a picture")
        needle = "not a readable image"
    elif case == "missing_gt":
        write(tmp_path / "pred" / "images" / "00001_00.png", image)
        needle = "00001_00.png: no image of that name"
    elif case == "missing_pred":
        write(tmp_path / "gt" / "fg_masks" / "00000_00.png", image)
        needle = "--dataset"
    elif case == "dataset_missing":
        transforms = dataset(tmp_path, [{"file_path": "images/00000_00.png"}, {"file_path": "images/00001_00"}])
        args, needle = [*args, "--dataset", transforms], "frame 1: no image images/00001_00.png"
    else:
        write(tmp_path / "gt" / "fg_masks" / "00000_00.png", np.zeros((10, 10), np.uint8))
        transforms = dataset(tmp_path, [{"file_path": "images/00000_00.png", "fg_mask_path": "fg_masks/00000_00.png"}])
        args, needle = [*args, "--dataset", transforms], "10×10 pixels"
    assert main(["compare", *map(str, args), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("avatar: error:") and needle in err[0], err
