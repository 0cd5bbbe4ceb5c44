"""The `avatar` command: render, app, info, build-demo, and the learning and study commands."""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from assets import DEMO_AUDIO, DEMO_AVATAR, DEMO_DIR
from common.errors import InputError, interrupt_behind
from models.audio.loudness import LoudnessTarget
from models.rig.emotion import parse_emotions
from models.rig.expression_space import EXPRESSION_SPACES
from models.rig.living import LAYERS, LivingLayers, check_strength
from renderer.camera import Camera
from renderer.camera_files import load_camera
from renderer.render import BACKEND_HELP, BACKENDS

from .avatar import Avatar, AvatarSource, resolve_avatar_source
from .clip import DEFAULT_FPS, ClipSource
from .compare import add_compare_command
from .dataset import FLAME_SOURCES, cmd_render_dataset
from .interrupts import exit_code, sigterm_interrupts
from .learn_cli import add_learning_commands
from .options import parse_colour, parse_size
from .outputs import check_output_file, check_output_folder, holds_only
from .player import Player
from .preset import load_preset
from .stimuli.cli import add_stimulus_commands
from .threads import usable_cores, use_threads
from .video import check_video_output, check_video_size, is_video_path


def add_avatar_arguments(p: argparse.ArgumentParser, required: bool = True) -> None:
    src = p.add_mutually_exclusive_group(required=required)
    src.add_argument("--demo", action="store_true", help="the embedded demo head" + ("" if required else " (the default)"))
    src.add_argument("--avatar", metavar="DIR", help="GaussianAvatars folder (point_cloud.ply + flame_param.npz) or a PLY")
    p.add_argument("--flame", metavar="FILE", help="FLAME model (.pkl or .npz) the avatar was trained with")
    p.add_argument("--blendshapes", metavar="FILE", help="blendshape model (.npz) for audio, weights and emotions")
    p.add_argument("--driver", choices=("learned", "signal"), default="learned",
                   help="what turns audio and emotions into weights: the learned generator (default; the "
                        "shipped one on the demo, --generator DIR otherwise) or the signal-based driver")
    p.add_argument("--generator", metavar="DIR", help="a generator folder made by `avatar train-speech`")


def add_performance_arguments(p: argparse.ArgumentParser) -> None:
    """What drives the face: the clip source and the emotion performance."""
    drive = p.add_mutually_exclusive_group()
    drive.add_argument("--weights", metavar="NPZ", help="speech/expression weight sequence (*.weights.npz)")
    drive.add_argument("--motion", metavar="NPZ|DIR", help="FLAME motion, one row per frame: flame_param.npz keys, VHAP's "
                       "tracked_flame_params*.npz, or a folder of per-frame .npz files (VHAP's flame_param/)")
    p.add_argument("--audio", metavar="WAV", help="speech audio: drives the face, or is the soundtrack of --weights/--motion")
    p.add_argument("--emotion", metavar="MIX", help="e.g. happy=0.8,surprised=0.3")
    p.add_argument("--preset", metavar="JSON", help="emotion preset saved by the app (mix, strengths, keyframes)")
    p.add_argument("--speech-gain", type=float, help="speech strength (default 1, or the preset's)")
    p.add_argument("--expression-gain", type=float, help="expression strength (default 1, or the preset's)")
    p.add_argument("--expression-space", choices=EXPRESSION_SPACES, default="free",
                   help="avatar: keep each frame's expression and jaw inside the avatar's own tracked ones (its "
                        "flame_param.npz), against artefacts from expressions it never saw; free (default): as made")
    for option, (what, high) in {"--blink": ("blinks (needs a FLAME with eyelid blendshapes)", 1),
                                 "--gaze": ("saccadic gaze shifts and fixations", 2),
                                 "--head-motion": ("idle head motion following the speech", 2)}.items():
        p.add_argument(option, metavar="STRENGTH", help=f"{what}: 0 off, 1 human statistics (default where the "
                       f"avatar can), up to {high}")
    p.add_argument("--seed", metavar="N", default="0", help="seed of the blinks, gaze and head motion (default 0)")
    p.add_argument("--fps", type=float, default=DEFAULT_FPS)
    p.add_argument("--start", type=float, default=0.0, metavar="SECONDS", help="start this far into the audio, weights or motion")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="trim (or, for a still clip, set) the length")
    p.add_argument("--loudness", metavar="TARGET",
                   help="bring the audio to a loudness first: --loudness=-23LUFS (BS.1770) or --loudness=-20dBFS (RMS)")


def add_camera_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--camera", metavar="JSON", help="render at a camera from a file: a GaussianAvatars/VHAP/NeRF "
                   "transforms*.json or a camera JSON (width, height, K, world_to_camera); replaces the orbit camera")
    p.add_argument("--camera-index", type=int, metavar="N",
                   help="the transforms file's frame whose camera_index is N (default: its first frame)")


def file_camera(args: argparse.Namespace) -> Camera | None:
    """The camera --camera/--camera-index name, if any; orbit options (where the command has
    them) cannot be combined with it."""
    if args.camera is None:
        if args.camera_index is not None:
            raise InputError("--camera-index needs --camera FILE")
        return None
    orbit = [f"--{name}" for name in ("yaw", "pitch", "distance") if getattr(args, name, None) is not None]
    if orbit:
        raise InputError(f"--camera sets the view; {', '.join(orbit)} cannot be combined with it")
    return load_camera(args.camera, args.camera_index)


def avatar_source(args: argparse.Namespace) -> AvatarSource:
    """The avatar and driver that --demo/--avatar, --flame, --blendshapes, --driver and
    --generator name (see `resolve_avatar_source`)."""
    demo = args.demo or not args.avatar
    return resolve_avatar_source(None if demo else Path(args.avatar), *(Path(v) if v else None for v in (
        args.flame, args.blendshapes, args.generator)), driver=args.driver)


def apply_performance(args: argparse.Namespace, player: Player) -> None:
    """--preset, then --emotion / --speech-gain / --expression-gain where given, and
    --expression-space (which presets do not carry)."""
    if args.preset:
        performance = load_preset(args.preset)
        try:
            player.set_performance(performance)
        except InputError as err:
            raise InputError(f"{args.preset}: {err}") from None
    if args.emotion:
        player.set_emotions(parse_emotions(args.emotion))
    perf = player.performance
    perf.speech_gain = args.speech_gain if args.speech_gain is not None else perf.speech_gain
    perf.expression_gain = args.expression_gain if args.expression_gain is not None else perf.expression_gain
    try:
        player.set_expression_space(args.expression_space)
    except InputError as err:
        raise InputError(f"--expression-space {args.expression_space}: {err}") from None


def living_layers(args: argparse.Namespace, player: Player) -> LivingLayers:
    """--blink, --gaze, --head-motion and --seed over the default for the player's clip: every
    layer the avatar can show, at strength 1, except over a FLAME motion (which carries its own
    lids, eyes and head); a layer asked for that it cannot show is refused."""
    seed = args.seed.strip()
    if not (seed.isascii() and seed.isdigit()) or int(seed) >= 2**31:
        raise InputError(f"--seed {args.seed}: a whole number in 0..2147483647")
    default = LivingLayers(seed=int(seed)) if player.clip.motion is not None else player.default_living(int(seed))
    strengths, off = dataclasses.asdict(default), player.living_unavailable()
    for name, (option, high) in LAYERS.items():
        text = getattr(args, name)
        if text is None:
            continue
        strengths[name] = check_strength(option, text, high)
        if strengths[name] > 0 and name in off:
            raise InputError(f"{option} {text}: {off[name]}")
    return LivingLayers(**strengths)


def clip_source(args: argparse.Namespace, avatar: Avatar, demo: bool) -> ClipSource:
    """The timeline's source from --audio / --weights / --motion (or the avatar's own defaults)."""
    paths = {k: Path(v) if v else None for k, v in (("audio", args.audio), ("weights", args.weights),
                                                   ("motion", args.motion))}
    if not any(paths.values()):
        own = avatar.params
        if demo:
            paths["audio"] = DEMO_AUDIO
        elif own is not None and own.num_frames > 1:  # replay the avatar's tracked sequence
            paths["motion"] = Path(avatar.source).parent / "flame_param.npz"
    loudness = LoudnessTarget.parse(args.loudness) if args.loudness else None
    return ClipSource(**paths, duration=args.duration, start=args.start, loudness=loudness)


def cmd_render(args: argparse.Namespace) -> int:
    if args.dataset:
        return cmd_render_dataset(args, avatar_source(args))
    use_threads(usable_cores())
    camera = file_camera(args)
    width, height = parse_size(args.size) if args.size else (camera.width, camera.height) if camera else (512, 512)
    video = is_video_path(args.output)
    if not video and Path(args.output).suffix:
        raise InputError(f"-o {args.output}: give a .mp4 file or a folder for PNG frames")
    if video and camera is not None and not args.size and (width % 2 or height % 2):
        raise InputError(f"--camera {args.camera}: its image is {width}x{height}, and an MP4 needs an even width and "
                         "height: give --size, or a folder for PNG frames")
    if video:
        check_video_size(width, height)
    check_video_output(args.output)
    source = avatar_source(args)
    player = Player(source.load(), backend=args.backend)
    apply_performance(args, player)
    player.set_view(width=width, height=height, yaw=args.yaw or 0.0, pitch=args.pitch or 0.0, distance=args.distance,
                    background=parse_colour(args.background), camera=camera)
    clip = player.load_clip(clip_source(args, player.avatar, source.avatar == DEMO_AVATAR), args.fps)
    player.set_living(living_layers(args, player))

    start = time.perf_counter()
    with tqdm(total=clip.num_frames, unit="frame", desc="rendering", disable=args.quiet) as bar:
        player.record(args.output, on_frame=lambda _index, _frame: bar.update())
    seconds = time.perf_counter() - start
    print(f"wrote {args.output}: {clip.num_frames} frames at {clip.fps:g} fps, {width}x{height} | "
          f"backend {player.backend} | {player.num_gaussians:,} Gaussians | "
          f"{clip.num_frames / max(seconds, 1e-9):.1f} frames/s")
    return 0


def cmd_app(args: argparse.Namespace) -> int:
    if (sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM")
            and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))):
        raise InputError("no display to open a window on: run it on a desktop or under "
                                       "xvfb-run, or set QT_QPA_PLATFORM=offscreen (e.g. with --snapshot)")
    # Qt only when the app is asked for; without its optional-codec chatter
    os.environ.setdefault("QT_LOGGING_RULES", "qt.multimedia.symbolsresolver=false")
    from .gui.app import is_our_png, run_app

    if args.snapshot:
        check_output_file(args.snapshot, is_our_png, "snapshot")
    camera = file_camera(args)
    source = avatar_source(args)
    player = Player(source.load(), backend=args.backend)
    apply_performance(args, player)
    player.set_view(camera=camera)
    clip = clip_source(args, player.avatar, source.avatar == DEMO_AVATAR)
    player.load_clip(clip, args.fps)
    player.set_living(living_layers(args, player))
    return run_app(player, source, clip, snapshot=Path(args.snapshot) if args.snapshot else None)


def cmd_info(args: argparse.Namespace) -> int:
    from .info import describe
    print(describe(Path(args.path)))
    return 0


def cmd_build_demo(args: argparse.Namespace) -> int:
    from .demo.build import build_demo
    check_output_folder(args.out, holds_only(r"flame_demo\.npz|avatar|blendshapes\.npz|speech\.wav"), "demo")
    for path in build_demo(Path(args.out), speech=not args.no_speech):
        print(f"wrote {path}")
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avatar", description="Emotional talking-head studio.")
    sub = parser.add_subparsers(dest="command", required=True)

    r = sub.add_parser("render", help="render a clip to MP4 or PNG frames")
    add_avatar_arguments(r)
    add_performance_arguments(r)
    r.add_argument("--size", metavar="WxH", help="image size (default: the --camera file's, else 512x512); with "
                   "--camera, its intrinsics are scaled to it")
    r.add_argument("--yaw", type=float, help="degrees; positive turns toward the subject's left (default 0)")
    r.add_argument("--pitch", type=float, help="degrees; positive looks from above (default 0)")
    r.add_argument("--distance", type=float, help="camera distance in metres (default: auto-framed)")
    add_camera_arguments(r)
    r.add_argument("--dataset", metavar="JSON", help="render every frame of a GaussianAvatars/VHAP split "
                   "(transforms_*.json) at its camera and FLAME parameters into the folder -o, under its file_path")
    r.add_argument("--dataset-flame", choices=FLAME_SOURCES, default="split",
                   help="split (default): each frame's flame_param_path, else its timestep_index into the avatar's "
                        "flame_param.npz; avatar: always the latter (GaussianAvatars' fine-tuned parameters)")
    r.add_argument("--background", default="white", help="white, black, gray, #rrggbb or r,g,b")
    r.add_argument("--backend", default="auto", choices=BACKENDS, help=BACKEND_HELP)
    r.add_argument("-o", "--output", required=True, help="out.mp4, or a folder for PNG frames")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(run=cmd_render)

    a = sub.add_parser("app", help="the desktop app: live playback, emotion sliders, curves, recording")
    add_avatar_arguments(a, required=False)
    add_performance_arguments(a)
    a.add_argument("--backend", default="auto", choices=BACKENDS, help=BACKEND_HELP)
    a.add_argument("--snapshot", metavar="PNG", help="render the first frame, save a grab of the window, exit")
    add_camera_arguments(a)
    a.set_defaults(run=cmd_app)

    i = sub.add_parser("info", help="what an avatar folder, PLY, FLAME, blendshape, weights or WAV file holds")
    i.add_argument("path")
    i.set_defaults(run=cmd_info)

    add_learning_commands(sub)
    add_stimulus_commands(sub)
    add_compare_command(sub)

    b = sub.add_parser("build-demo", help="regenerate the embedded demo assets")
    b.add_argument("--out", default=str(DEMO_DIR))
    b.add_argument("--no-speech", action="store_true", help="keep the existing speech.wav (no espeak-ng)")
    b.set_defaults(run=cmd_build_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        with sigterm_interrupts():
            return args.run(args)
    except InputError as err:
        print(f"avatar: error: {err}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, SystemError) as err:  # Ctrl-C or SIGTERM (see interrupt_behind)
        stop = interrupt_behind(err)
        if stop is None:
            raise
        print("avatar: cancelled (no partial output was left)", file=sys.stderr)
        return exit_code(stop)


if __name__ == "__main__":
    sys.exit(main())
