"""`avatar compare`: PSNR and SSIM of rendered images against captured ones, image by image and
overall (the mean over images, as GaussianAvatars reports its test metrics).

Images are paired by name: in two folders by their relative path without the extension (any
of .png, .jpg, .jpeg), or, with a dataset's `transforms*.json`, by each frame's `file_path`
(`avatar render --dataset` writes its images under those names). Values are in 0..1 (8- or
16-bit files), computed in float64. An image with an alpha channel is composited onto the
background: rgb·a + background·(1 − a), as GaussianAvatars loads its RGBA images; a frame's
`fg_mask_path` mask m (grey, 0..1) composites the captured image the same way,
truth·m + background·(1 − m), so the captured background is replaced by the one the avatar was
rendered on. The rendered image is used as it is.

PSNR = 10·log10(1 / MSE) over all pixels and channels (inf for identical images). SSIM is Wang,
Bovik, Sheikh and Simoncelli 2004: an 11×11 Gaussian window (σ = 1.5, weights summing to 1),
C1 = (0.01)², C2 = (0.03)² for values in 0..1, local means, variances and covariance weighted by
the window, the SSIM map averaged over every position where the window lies wholly inside the
image (the authors' ssim_index.m, "valid" filtering), then over the three channels. (3DGS-family
training code pads the borders with zeros instead, which moves values near the borders.)
"""
from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from scipy import ndimage
from tqdm import tqdm

from common.errors import InputError, error_detail
from common.files import check_input_file
from common.limits import MAX_IMAGE_SIDE
from renderer.camera_files import read_transforms

from .dataset import IMAGE_SUFFIXES, frame_key, image_key

SSIM_WINDOW = 11  # pixels per side of the Gaussian window
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
FORMAT = "talking-head-studio comparison"


@dataclass(frozen=True)
class Pair:
    """A rendered image, the captured one it is compared with, and the capture's mask (if any)."""

    name: str
    prediction: Path
    truth: Path
    mask: Path | None = None


@dataclass(frozen=True)
class Score:
    pair: Pair
    psnr: float
    ssim: float


def _decode(path: Path, what: str) -> np.ndarray:
    """An image file as float64 (H, W, C) in 0..1, C = 1 (grey), 2 (grey, alpha), 3 or 4; its
    size is read from the header and checked before the pixels are decoded."""
    check_input_file(path, what)
    try:
        shape = iio.improps(path, plugin="pillow").shape
        if len(shape) in (2, 3) and max(shape[:2]) <= MAX_IMAGE_SIDE:
            data = iio.imread(path, plugin="pillow")
    except Exception as err:  # noqa: BLE001 - any decoder's failure is a bad file
        raise InputError(f"{path}: not a readable {what} ({error_detail(err)})") from None
    if len(shape) not in (2, 3) or max(shape[:2]) > MAX_IMAGE_SIDE:
        raise InputError(f"{path}: a {what} of shape {shape}; expected one image of at most "
                         f"{MAX_IMAGE_SIDE} pixels a side")
    if data.ndim == 2:
        data = data[..., None]
    if data.shape[2] not in (1, 2, 3, 4):
        raise InputError(f"{path}: a {what} with {data.shape[2]} channels; expected grey, RGB or either with alpha")
    if data.dtype == np.uint8 or data.dtype == np.uint16:
        return data.astype(np.float64) / np.iinfo(data.dtype).max
    if data.dtype == bool:
        return data.astype(np.float64)
    raise InputError(f"{path}: {what} pixels are {data.dtype}; expected 8- or 16-bit values")


def read_image(path: str | os.PathLike, background: tuple[float, float, float]) -> np.ndarray:
    """An RGB image, float64 (H, W, 3) in 0..1; grey is repeated, alpha composited onto `background`."""
    data = _decode(Path(path), "image")
    colour = data[..., :3] if data.shape[2] >= 3 else np.repeat(data[..., :1], 3, axis=2)
    if data.shape[2] in (2, 4):
        return _composite(colour, data[..., -1:], background)
    return colour


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """A foreground mask, float64 (H, W, 1) in 0..1: a grey image (a colour one is averaged)."""
    data = _decode(Path(path), "mask")
    return data[..., :3].mean(axis=2, keepdims=True) if data.shape[2] >= 3 else data[..., :1]


def _composite(colour: np.ndarray, alpha: np.ndarray, background: tuple[float, float, float]) -> np.ndarray:
    return colour * alpha + np.asarray(background, np.float64) * (1.0 - alpha)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two images in 0..1 (inf when they are equal)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def _gaussian_window() -> np.ndarray:
    """The 1-D factor of the 11×11 window (the 2-D window is its outer product)."""
    x = np.arange(SSIM_WINDOW, dtype=np.float64) - SSIM_WINDOW // 2
    g = np.exp(-x**2 / (2 * SSIM_SIGMA**2))
    return g / g.sum()


def _window_mean(values: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Window-weighted means at every position where the window fits inside the image."""
    r = SSIM_WINDOW // 2
    filtered = ndimage.correlate1d(ndimage.correlate1d(values, g, axis=0, mode="constant"), g, axis=1, mode="constant")
    return filtered[r:-r, r:-r]


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004) of two (H, W, C) images in 0..1, averaged over channels."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if min(a.shape[:2]) < SSIM_WINDOW:
        raise InputError(f"SSIM needs images of at least {SSIM_WINDOW}×{SSIM_WINDOW} pixels, not "
                         f"{a.shape[1]}×{a.shape[0]}")
    g, c1, c2 = _gaussian_window(), SSIM_K1**2, SSIM_K2**2
    means = []
    for channel in range(a.shape[2]):
        x, y = a[..., channel], b[..., channel]
        mx, my = _window_mean(x, g), _window_mean(y, g)
        vx = _window_mean(x * x, g) - mx * mx
        vy = _window_mean(y * y, g) - my * my
        cxy = _window_mean(x * y, g) - mx * my
        index = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        means.append(float(index.mean()))
    return float(np.mean(means))


def score(pair: Pair, background: tuple[float, float, float]) -> Score:
    """PSNR and SSIM of one pair, the capture composited through its mask onto `background`."""
    prediction, truth = read_image(pair.prediction, background), read_image(pair.truth, background)
    if prediction.shape != truth.shape:
        raise InputError(f"{pair.prediction}: {_size(prediction)} pixels, but {pair.truth} has {_size(truth)}; "
                         "images compared must have the same size")
    if pair.mask is not None:
        mask = read_mask(pair.mask)
        if mask.shape[:2] != truth.shape[:2]:
            raise InputError(f"{pair.mask}: {_size(mask)} pixels, but its image {pair.truth} has {_size(truth)}")
        truth = _composite(truth, mask, background)
    return Score(pair, psnr(prediction, truth), ssim(prediction, truth))


def _size(image: np.ndarray) -> str:
    return f"{image.shape[1]}×{image.shape[0]}"


def _folder(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: {'is not a folder' if path.exists() else 'no such folder'} ({what})")
    return path


def images_in(folder: Path) -> dict[str, Path]:
    """The images under `folder` by `image_key` (hidden files and folders skipped: our marks and
    temporaries). Two files that differ only by extension are refused: which one is meant?"""
    found: dict[str, Path] = {}
    for root, folders, files in os.walk(folder):
        folders[:] = sorted(f for f in folders if not f.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in IMAGE_SUFFIXES:
                continue
            path = Path(root) / name
            key = image_key(path.relative_to(folder).as_posix())
            if key in found:
                raise InputError(f"{folder}: {found[key].name} and {name} are the same image with two extensions; "
                                 "keep one")
            found[key] = path
    return found


def pair_folders(predictions: str | os.PathLike, truths: str | os.PathLike) -> list[Pair]:
    """Every image of `predictions` with the image of the same relative name in `truths`; an
    image on either side without a counterpart is an error."""
    pred_dir, truth_dir = _folder(predictions, "rendered images"), _folder(truths, "captured images")
    pred, truth = images_in(pred_dir), images_in(truth_dir)
    if not pred:
        raise InputError(f"{pred_dir}: no images in it (.png, .jpg, .jpeg)")
    for here, there, other in ((pred, truth, truth_dir), (truth, pred, pred_dir)):
        missing = sorted(set(here) - set(there))
        if missing:
            raise InputError(f"{here[missing[0]]}: no image of that name in {other} ({len(missing)} images without "
                             "a counterpart; to compare against a dataset's images, give --dataset)")
    return [Pair(key, pred[key], truth[key]) for key in sorted(pred)]


def _find(folder: Path, key: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        if (folder / (key + suffix)).is_file():
            return folder / (key + suffix)
    return None


def pair_dataset(predictions: str | os.PathLike, truths: str | os.PathLike, transforms: str | os.PathLike) -> list[Pair]:
    """One pair per frame of the dataset split, in file order: the rendered image named by the
    frame's `file_path` in `predictions`, the captured one in `truths` (the dataset's folder:
    `file_path` and `fg_mask_path` are relative to it), and its mask when the frame has one."""
    pred_dir, truth_dir = _folder(predictions, "rendered images"), _folder(truths, "captured images")
    pairs = []
    for i, frame in enumerate(read_transforms(transforms)):
        key = frame_key(str(transforms), i, frame.file_path)
        written = truth_dir / frame.file_path  # the capture as named, else found by its key
        prediction = _find(pred_dir, key)
        truth = written if written.suffix.lower() in IMAGE_SUFFIXES and written.is_file() else _find(truth_dir, key)
        for found, folder in ((prediction, pred_dir), (truth, truth_dir)):
            if found is None:
                raise InputError(f"{transforms}: frame {i}: no image {key}.png (.jpg, .jpeg) in {folder}")
        mask = None
        if frame.fg_mask_path is not None:
            mask = truth_dir / frame.fg_mask_path
            if image_key(frame.fg_mask_path) == frame.fg_mask_path:  # no extension: find one, as for images
                mask = _find(truth_dir, frame.fg_mask_path) or mask
            if not mask.is_file():
                raise InputError(f"{transforms}: frame {i}: its mask {mask} is missing")
        pairs.append(Pair(key, prediction, truth, mask))
    return pairs


def _number(value: float) -> float | str:
    """A value for JSON: inf (identical images' PSNR) as the string "inf"."""
    return "inf" if math.isinf(value) else value


def report_json(scores: list[Score], background: tuple[float, float, float]) -> str:
    images = [{"name": s.pair.name, "prediction": str(s.pair.prediction), "truth": str(s.pair.truth),
               "mask": None if s.pair.mask is None else str(s.pair.mask), "psnr": _number(s.psnr), "ssim": s.ssim}
              for s in scores]
    overall = {"images": len(scores), "psnr": _number(float(np.mean([s.psnr for s in scores]))),
               "ssim": float(np.mean([s.ssim for s in scores]))}
    return json.dumps({"format": FORMAT, "version": 1, "background": list(background), "images": images,
                       "overall": overall}, indent=1)


def report_text(scores: list[Score]) -> str:
    width = max(len("image"), *(len(s.pair.name) for s in scores))
    lines = [f"{'image':<{width}}  {'PSNR dB':>8}  {'SSIM':>6}"]
    lines += [f"{s.pair.name:<{width}}  {s.psnr:>8.2f}  {s.ssim:>6.4f}" for s in scores]
    mean_psnr, mean_ssim = float(np.mean([s.psnr for s in scores])), float(np.mean([s.ssim for s in scores]))
    lines.append(f"{f'mean of {len(scores)}':<{width}}  {mean_psnr:>8.2f}  {mean_ssim:>6.4f}")
    return "\n".join(lines)


def cmd_compare(args: argparse.Namespace) -> int:
    background = args.background
    if args.dataset:
        pairs = pair_dataset(args.predictions, args.truths, args.dataset)
    else:
        pairs = pair_folders(args.predictions, args.truths)
    scores = [score(pair, background) for pair in tqdm(pairs, unit="image", desc="comparing",
                                                       disable=args.quiet or args.json)]
    print(report_json(scores, background) if args.json else report_text(scores))
    return 0
