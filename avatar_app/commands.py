"""What the `avatar` commands render, app, info and build-demo do. Imported only when one of them
runs (`cli` holds their arguments), so `avatar --help` and an argument error load nothing heavy."""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

from assets import DEMO_AUDIO, DEMO_AVATAR, DEMO_DIR
from common.errors import InputError, labelled
from models.audio.decode import AUDIO_SUFFIXES
from models.audio.loudness import LoudnessTarget
from models.audio.spoken_text import SpokenText, speak
from models.rig.emotion import parse_emotions
from models.rig.living import LivingLayers, check_strength
from models.rig.settings import LAYERS
from renderer.camera import Camera
from renderer.camera_files import load_camera

from .avatar import Avatar, AvatarSource, resolve_avatar_source
from .clip import ClipSource
from .dataset import cmd_render_dataset
from .outputs import check_output_file, check_output_folder, holds_only
from .player import Player
from .preset import load_preset
from .threads import usable_cores, use_threads
from .video import check_video_output, check_video_size, is_video_path


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
        with labelled(str(args.preset)):
            player.set_performance(performance)
    if args.emotion:
        mix = parse_emotions(args.emotion)
        with labelled(f"--emotion {args.emotion}"):
            player.set_emotions(mix)
    perf = player.performance
    perf.speech_gain = args.speech_gain if args.speech_gain is not None else perf.speech_gain
    perf.expression_gain = args.expression_gain if args.expression_gain is not None else perf.expression_gain
    with labelled(f"--expression-space {args.expression_space}"):
        player.set_expression_space(args.expression_space)


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


def spoken_text(args: argparse.Namespace) -> SpokenText | None:
    """What --text and its language, voice and rate ask espeak-ng to say, spoken now (once: it is
    cached), so a missing espeak-ng or an unknown voice is said before anything loads."""
    if args.text is None:
        return None
    if args.audio:
        raise InputError("--text and --audio both give the speech: give one of them")
    text = SpokenText(args.text, args.text_language, args.text_voice, args.text_rate)
    speak(text)
    return text


def clip_source(args: argparse.Namespace, avatar: Avatar, demo: bool) -> ClipSource:
    """The timeline's source from --audio / --text / --weights / --motion (or the avatar's own
    defaults)."""
    paths = {k: Path(v) if v else None for k, v in (("audio", args.audio), ("weights", args.weights),
                                                   ("motion", args.motion))}
    if paths["weights"] and paths["weights"].suffix.lower() in AUDIO_SUFFIXES:
        raise InputError(f"--weights {args.weights}: this is audio, and --weights takes a weight sequence "
                         "(*.weights.npz); give audio with --audio")
    text = spoken_text(args)
    if not any(paths.values()) and text is None:
        own = avatar.params
        if demo:
            paths["audio"] = DEMO_AUDIO
        elif own is not None and own.num_frames > 1:  # replay the avatar's tracked sequence
            paths["motion"] = Path(avatar.source).parent / "flame_param.npz"
    loudness = LoudnessTarget.parse(args.loudness) if args.loudness else None
    return ClipSource(**paths, duration=args.duration, start=args.start, loudness=loudness, text=text)


def performing_player(args: argparse.Namespace, backend: str) -> Player:
    """The Player that render's avatar, driving, emotion, living-layer and timing options make
    (no view yet): `avatar render` records it, `avatar export` exports its animation."""
    source = avatar_source(args)
    player = Player(source.load(), backend=backend)
    apply_performance(args, player)
    player.load_clip(clip_source(args, player.avatar, source.avatar == DEMO_AVATAR), args.fps)
    player.set_living(living_layers(args, player))
    return player


def cmd_render(args: argparse.Namespace) -> int:
    if args.dataset:
        return cmd_render_dataset(args, avatar_source(args))
    use_threads(usable_cores())
    camera = file_camera(args)
    width, height = args.size or ((camera.width, camera.height) if camera else (512, 512))
    video = is_video_path(args.output)
    if not video and Path(args.output).suffix:
        raise InputError(f"-o {args.output}: give a .mp4 file or a folder for PNG frames")
    if video and camera is not None and not args.size and (width % 2 or height % 2):
        raise InputError(f"--camera {args.camera}: its image is {width}x{height}, and an MP4 needs an even width and "
                         "height: give --size, or a folder for PNG frames")
    if video:
        check_video_size(width, height)
    check_video_output(args.output)
    spoken_text(args)
    player = performing_player(args, args.backend)
    player.set_view(width=width, height=height, yaw=args.yaw or 0.0, pitch=args.pitch or 0.0, distance=args.distance,
                    background=args.background, camera=camera)
    clip = player.clip

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
    spoken_text(args)
    source = avatar_source(args)
    player = Player(source.load(), backend=args.backend)
    apply_performance(args, player)
    player.set_view(yaw=args.yaw or 0.0, pitch=args.pitch or 0.0, distance=args.distance,
                    background=args.background, camera=camera)
    clip = clip_source(args, player.avatar, source.avatar == DEMO_AVATAR)
    player.load_clip(clip, args.fps)
    player.set_living(living_layers(args, player))
    return run_app(player, source, clip, snapshot=Path(args.snapshot) if args.snapshot else None,
                   autoplay=not args.paused, export_size=args.size)


def cmd_info(args: argparse.Namespace) -> int:
    from .info import describe
    print(describe(Path(args.path)))
    return 0


def cmd_build_demo(args: argparse.Namespace) -> int:
    from .demo.build import build_demo
    out = DEMO_DIR if args.in_place else Path(args.out)
    check_output_folder(out, holds_only(r"flame_demo\.npz|avatar|blendshapes\.npz|arkit_shapes\.npz|speech\.wav"),
                        "demo")
    if args.in_place:
        print(f"rebuilding the packaged demo in place: {out}")
    for path in build_demo(out, speech=not args.no_speech):
        print(f"wrote {path}")
    return 0
