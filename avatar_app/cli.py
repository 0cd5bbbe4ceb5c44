"""The `avatar` command: render, info, build-demo."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from tqdm import tqdm

import models.errors
import renderer.errors
from assets import DEMO_AUDIO, DEMO_DIR
from models.emotion import parse_emotions

from .avatar import Avatar, load_avatar, load_demo
from .clip import (DEFAULT_FPS, Clip, clip_from_audio, clip_from_motion, clip_from_weights,
                   still_clip, with_soundtrack)
from .player import Player
from .video import check_video_size, is_video_path, write_mp4, write_png_folder

USER_ERRORS = (models.errors.InputError, renderer.errors.InputError)
NAMED_COLOURS = {"white": (1, 1, 1), "black": (0, 0, 0), "gray": (0.5, 0.5, 0.5),
                 "grey": (0.5, 0.5, 0.5), "green": (0, 1, 0), "blue": (0, 0, 1)}
STILL_SECONDS = 3.0


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise models.errors.InputError(f"--size {text}: expected WIDTHxHEIGHT, e.g. 512x512") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise models.errors.InputError(f"--size {text}: width and height must be 16..8192")
    return w, h


def parse_colour(text: str) -> tuple[float, float, float]:
    """white | black | gray | green | blue | #rrggbb | r,g,b (0..1)."""
    t = text.strip().lower()
    if t in NAMED_COLOURS:
        return tuple(float(c) for c in NAMED_COLOURS[t])
    try:
        if t.startswith("#") and len(t) == 7:
            return tuple(int(t[i:i + 2], 16) / 255 for i in (1, 3, 5))
        rgb = tuple(float(v) for v in t.split(","))
        if len(rgb) == 3 and all(0 <= c <= 1 for c in rgb):
            return rgb
    except ValueError:
        pass
    raise models.errors.InputError(f"--background {text}: use a name ({', '.join(NAMED_COLOURS)}), "
                                   "#rrggbb or r,g,b in 0..1")


def add_avatar_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--demo", action="store_true", help="the embedded demo head")
    src.add_argument("--avatar", metavar="DIR", help="GaussianAvatars folder (point_cloud.ply + flame_param.npz) or a PLY")
    p.add_argument("--flame", metavar="FILE", help="FLAME model (.pkl or .npz) the avatar was trained with")
    p.add_argument("--blendshapes", metavar="FILE", help="blendshape model (.npz) for audio, weights and emotions")


def load_from_args(args: argparse.Namespace) -> Avatar:
    if args.demo:
        return load_demo()
    return load_avatar(args.avatar, args.flame, args.blendshapes)


def build_clip(args: argparse.Namespace, player: Player) -> Clip:
    """The timeline from --audio / --weights / --motion (or the avatar's own defaults)."""
    bs = player.avatar.blendshapes
    needs_blendshapes = args.weights or (args.audio and not args.motion)
    if needs_blendshapes and bs is None:
        raise models.errors.InputError("driving from audio or weights needs a blendshape model (--blendshapes FILE)")
    if args.weights:
        return with_soundtrack(clip_from_weights(args.weights, bs, args.fps, args.duration), args.audio)
    if args.motion:
        return with_soundtrack(clip_from_motion(args.motion, args.fps, args.duration), args.audio)
    if args.audio:
        return clip_from_audio(args.audio, player.driver, args.fps, args.duration)
    if args.demo:
        return clip_from_audio(DEMO_AUDIO, player.driver, args.fps, args.duration)
    own = player.avatar.params
    if own is not None and own.num_frames > 1:  # replay the avatar's tracked sequence
        return clip_from_motion(Path(player.avatar.source).parent / "flame_param.npz", args.fps, args.duration)
    return still_clip(args.duration or STILL_SECONDS, args.fps)


def cmd_render(args: argparse.Namespace) -> int:
    width, height = parse_size(args.size)
    video = is_video_path(args.output)
    if not video and Path(args.output).suffix:
        raise models.errors.InputError(f"-o {args.output}: give a .mp4 file or a folder for PNG frames")
    if video:
        check_video_size(width, height)
    player = Player(load_from_args(args), backend=args.backend)
    player.set_emotions(parse_emotions(args.emotion) if args.emotion else {})
    player.performance.speech_gain = args.speech_gain
    player.performance.expression_gain = args.expression_gain
    player.view.width, player.view.height = width, height
    player.view.yaw, player.view.pitch, player.view.distance = args.yaw, args.pitch, args.distance
    player.view.background = parse_colour(args.background)
    clip = player.clip = build_clip(args, player)

    start = time.perf_counter()
    frames = tqdm(player.render_range(0, clip.num_frames), total=clip.num_frames, unit="frame",
                  desc="rendering", disable=args.quiet)
    if video:
        write_mp4(frames, args.output, (width, height), clip.fps, clip.num_frames, clip.audio)
    else:
        write_png_folder(frames, args.output, clip.audio)
    seconds = time.perf_counter() - start
    print(f"wrote {args.output}: {clip.num_frames} frames at {clip.fps:g} fps, {width}x{height} | "
          f"backend {player.backend} | {player.num_gaussians:,} Gaussians | "
          f"{clip.num_frames / max(seconds, 1e-9):.1f} frames/s")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .info import describe
    print(describe(Path(args.path)))
    return 0


def cmd_build_demo(args: argparse.Namespace) -> int:
    from .build_demo import build_demo
    for path in build_demo(Path(args.out), speech=not args.no_speech):
        print(f"wrote {path}")
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avatar", description="Emotional talking-head studio.")
    sub = parser.add_subparsers(dest="command", required=True)

    r = sub.add_parser("render", help="render a clip to MP4 or PNG frames")
    add_avatar_arguments(r)
    drive = r.add_mutually_exclusive_group()
    drive.add_argument("--weights", metavar="NPZ", help="speech/expression weight sequence (*.weights.npz)")
    drive.add_argument("--motion", metavar="NPZ", help="FLAME motion (GaussianAvatars flame_param keys), one row per frame")
    r.add_argument("--audio", metavar="WAV", help="speech audio: drives the face, or is the soundtrack of --weights/--motion")
    r.add_argument("--emotion", metavar="MIX", help="e.g. happy=0.8,surprised=0.3")
    r.add_argument("--speech-gain", type=float, default=1.0)
    r.add_argument("--expression-gain", type=float, default=1.0)
    r.add_argument("--fps", type=float, default=DEFAULT_FPS)
    r.add_argument("--duration", type=float, metavar="SECONDS", help="trim (or, for a still clip, set) the length")
    r.add_argument("--size", default="512x512", metavar="WxH")
    r.add_argument("--yaw", type=float, default=0.0, help="degrees; positive turns toward the subject's left")
    r.add_argument("--pitch", type=float, default=0.0, help="degrees; positive looks from above")
    r.add_argument("--distance", type=float, help="camera distance in metres (default: auto-framed)")
    r.add_argument("--background", default="white", help="white, black, gray, #rrggbb or r,g,b")
    r.add_argument("--backend", default="auto", choices=("auto", "cpu", "gsplat"))
    r.add_argument("-o", "--output", required=True, help="out.mp4, or a folder for PNG frames")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(run=cmd_render)

    i = sub.add_parser("info", help="what an avatar folder, PLY, FLAME, blendshape, weights or WAV file holds")
    i.add_argument("path")
    i.set_defaults(run=cmd_info)

    b = sub.add_parser("build-demo", help="regenerate the embedded demo assets")
    b.add_argument("--out", default=str(DEMO_DIR))
    b.add_argument("--no-speech", action="store_true", help="keep the existing speech.wav (no espeak-ng)")
    b.set_defaults(run=cmd_build_demo)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return args.run(args)
    except USER_ERRORS as err:
        print(f"avatar: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("avatar: cancelled (no partial output was left)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
