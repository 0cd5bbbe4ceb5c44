"""The `avatar` command's arguments: render, app, info, build-demo, compare, and the learning and
study commands. What a command does lives in a module imported only when it runs
(`commands`, `learn_commands`, `stimuli.commands`, `compare`), so `avatar --help` and an argument
error load no torch, numpy or Qt."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from assets import DEMO_DIR
from common.errors import InputError, interrupt_behind
from models.audio.spoken_text import DEFAULT_LANGUAGE, DEFAULT_RATE, MAX_RATE, MIN_RATE
from models.rig.settings import EXPRESSION_SPACES, LAYERS
from renderer.backends import BACKEND_HELP, BACKENDS

from .arguments import Parser, lazy_command
from .interrupts import exit_code, sigterm_interrupts
from .learn_cli import add_learning_commands
from .options import (
    DEFAULT_FPS,
    FLAME_SOURCES,
    argument,
    parse_colour,
    parse_duration,
    parse_fps,
    parse_size,
    parse_start,
)
from .stimuli.cli import add_stimulus_commands

COMMANDS = "avatar_app.commands"
EXAMPLES = {  # command → one example, shown by `avatar --help`
    "render": "avatar render --demo --emotion happy=0.8,surprised=0.3 -o happy.mp4",
    "app": "avatar app --demo",
    "info": "avatar info assets/demo/avatar",
    "make-corpus": "avatar make-corpus corpus/",
    "train-blendshapes": "avatar train-blendshapes --synthetic -o bs.npz",
    "fit-mapping": "avatar fit-mapping --blendshapes bs.npz --flame flame2023.pkl -o bs_flame2023.npz",
    "train-speech": "avatar train-speech --synthetic --blendshapes bs.npz -o generator/",
    "evaluate": "avatar evaluate --synthetic --corpus-seed 1 --generator assets/model --signal",
    "stimuli": "avatar stimuli design.csv -o study/ --png",
    "trials": "avatar trials study/manifest.json --participants 24 --seed 7",
    "compare": "avatar compare renders/ data/ --dataset data/transforms_test.json",
    "build-demo": "avatar build-demo --out demo/",
    "export": "avatar export arkit --demo --emotion happy=0.7 --duration 2 -o take.csv",
}
LAYER_HELP = {"blink": "blinks (needs a FLAME with eyelid blendshapes)", "gaze": "saccadic gaze shifts and fixations",
              "head_motion": "idle head motion following the speech"}


def add_avatar_arguments(p: argparse.ArgumentParser, required: bool = True) -> None:
    src = p.add_mutually_exclusive_group(required=required)
    src.add_argument("--demo", action="store_true", help="the embedded demo head" + ("" if required else " (the default)"))
    src.add_argument("--avatar", metavar="DIR", help="GaussianAvatars folder (point_cloud.ply + flame_param.npz) or a PLY")
    p.add_argument("--flame", metavar="FILE", help="FLAME model (.pkl or .npz) the avatar was trained with")
    p.add_argument("--blendshapes", metavar="FILE", help="blendshape model (.npz) for audio, weights and emotions")
    p.add_argument("--driver", choices=("learned", "signal"), default="learned",
                   help="what turns audio and emotions into weights: the learned generator (the shipped one on "
                        "the demo, --generator DIR otherwise) or the signal-based driver")
    p.add_argument("--generator", metavar="DIR", help="a generator folder made by `avatar train-speech`")


def add_performance_arguments(p: argparse.ArgumentParser) -> None:
    """What drives the face: the clip source and the emotion performance."""
    drive = p.add_mutually_exclusive_group()
    drive.add_argument("--weights", metavar="NPZ", help="speech/expression weight sequence (*.weights.npz)")
    drive.add_argument("--motion", metavar="NPZ|DIR", help="FLAME motion, one row per frame: flame_param.npz keys, VHAP's "
                       "tracked_flame_params*.npz, or a folder of per-frame .npz files (VHAP's flame_param/)")
    drive.add_argument("--text", metavar="TEXT", help='a sentence for espeak-ng to speak; its speech drives the face '
                       '(instead of --audio), e.g. --text "Hello, how are you?"')
    p.add_argument("--audio", metavar="AUDIO", help="speech audio: a WAV, or anything ffmpeg decodes (MP3, M4A, FLAC, "
                   "OGG, a video's sound); drives the face, or is the soundtrack of --weights/--motion")
    p.add_argument("--text-language", default=DEFAULT_LANGUAGE, metavar="LANG",
                   help="espeak-ng language of --text: en-us, en, de, fr, es, … (`espeak-ng --voices` lists them)")
    p.add_argument("--text-voice", metavar="VARIANT", help="espeak-ng voice of --text: m1..m8, f1..f5, klatt, … "
                   "(`espeak-ng --voices=variant` lists them; default: the language's own)")
    p.add_argument("--text-rate", type=int, default=DEFAULT_RATE, metavar="WPM",
                   help=f"speaking rate of --text in words per minute, {MIN_RATE}..{MAX_RATE}")
    p.add_argument("--emotion", metavar="MIX", help="emotions and intensities 0..1, e.g. happy=0.8,surprised=0.3 "
                   "(a bare name is 1; `avatar info` on a blendshape model lists its emotions)")
    p.add_argument("--preset", metavar="JSON", help="emotion preset saved by the app (mix, strengths, keyframes)")
    p.add_argument("--speech-gain", type=float, metavar="GAIN", help="speech strength (default 1, or the preset's)")
    p.add_argument("--expression-gain", type=float, metavar="GAIN", help="expression strength (default 1, or the preset's)")
    p.add_argument("--expression-space", choices=EXPRESSION_SPACES, default="free",
                   help="avatar: keep each frame's expression and jaw inside the avatar's own tracked ones (its "
                        "flame_param.npz), against artefacts from expressions it never saw; free: as made")
    for name, (option, high) in LAYERS.items():
        p.add_argument(option, metavar="STRENGTH", help=f"{LAYER_HELP[name]}: 0 off, 1 human statistics (default "
                       f"where the avatar can), up to {high:g}")
    p.add_argument("--seed", metavar="N", default="0", help="seed of the blinks, gaze and head motion")
    p.add_argument("--fps", type=argument(parse_fps), default=DEFAULT_FPS, help="frames per second")
    p.add_argument("--start", type=argument(parse_start), default=0.0, metavar="SECONDS", help="start this far into the audio, weights or motion")
    p.add_argument("--duration", type=argument(parse_duration), metavar="SECONDS",
                   help="trim (or, for a still clip, set) the length (default: all of the source, 3 s for a still)")
    p.add_argument("--loudness", metavar="TARGET",
                   help="bring the audio to a loudness first: -23LUFS (BS.1770 integrated loudness) or -20dBFS (RMS)")


def add_view_arguments(p: argparse.ArgumentParser) -> None:
    """The orbit camera, or a camera from a file, and the background."""
    p.add_argument("--yaw", type=float, metavar="DEGREES", help="positive turns toward the subject's left (default 0)")
    p.add_argument("--pitch", type=float, metavar="DEGREES", help="positive looks from above (default 0)")
    p.add_argument("--distance", type=float, metavar="METRES", help="camera distance (default: auto-framed)")
    p.add_argument("--camera", metavar="JSON", help="render at a camera from a file: a GaussianAvatars/VHAP/NeRF "
                   "transforms*.json or a camera JSON (width, height, K, world_to_camera); replaces the orbit camera")
    p.add_argument("--camera-index", type=int, metavar="N",
                   help="the transforms file's frame whose camera_index is N (default: its first frame)")
    p.add_argument("--background", type=argument(parse_colour), default="white", metavar="COLOUR",
                   help="white, black, gray, green, blue, #rrggbb, or r,g,b with each channel 0..1 (e.g. 0.2,0.2,0.2)")


EXPORTS = {  # kind → (help, what -o takes)
    "arkit": ("ARKit's 52 blendshape curves solved from the posed face: Live Link Face CSV, or a plain CSV/JSON",
              "take.csv (livelink, csv) or take.json"),
    "gltf": ("glTF 2.0 binary: the rig's mesh, morph targets, skeleton and the clip's animation", "clip.glb"),
    "motion": ("FLAME motion (GaussianAvatars' flame_param.npz keys), living layers included", "motion.npz"),
    "weights": ("the speech and expression blendshape weights, gains applied", "clip.csv or clip.weights.npz"),
}
ARKIT_FORMATS = ("livelink", "csv", "json")


def add_export_commands(sub: argparse._SubParsersAction) -> None:
    """`avatar export KIND`: the animation `avatar render` would record with the same avatar,
    driving, emotion, living-layer and timing options, as a file other tools read."""
    e = sub.add_parser("export", help="export the animation: ARKit curves, glTF, FLAME motion or weights")
    kinds = e.add_subparsers(dest="kind", required=True, metavar="KIND", help="what to export")
    for kind, (text, output) in EXPORTS.items():
        k = kinds.add_parser(kind, help=text, description=f"{text}. Takes render's avatar, driving, emotion, "
                             "living-layer and timing options, so the file holds the performance render records.")
        add_avatar_arguments(k)
        add_performance_arguments(k)
        if kind == "arkit":
            k.add_argument("--arkit-shapes", metavar="NPZ", help="the 52 ARKit target shapes on the avatar's FLAME "
                           "topology, one (V, 3) displacement per Apple name (default on the demo: its own set)")
            k.add_argument("--format", choices=ARKIT_FORMATS, help="livelink: Live Link Face's CSV (Unreal, Blender); "
                           "csv/json: Apple's names, one weight per frame (default: json for a .json file, else "
                           "livelink)")
        k.add_argument("-o", "--output", required=True, metavar="FILE", help=output)
        k.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
        k.set_defaults(run=lazy_command("avatar_app.export_command", "cmd_export"))


def make_parser() -> argparse.ArgumentParser:
    examples = "\n".join(f"  {line}" for line in EXAMPLES.values())
    parser = Parser(prog="avatar", description="Emotional talking-head studio.",
                    epilog=f"one example per command:\n{examples}\n\n`avatar COMMAND --help` lists a command's options.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("render", help="render a clip to MP4 or PNG frames")
    add_avatar_arguments(r)
    add_performance_arguments(r)
    r.add_argument("--size", type=argument(parse_size), metavar="WxH", help="image size (default: the --camera file's, else 512x512); with "
                   "--camera, its intrinsics are scaled to it")
    add_view_arguments(r)
    r.add_argument("--dataset", metavar="JSON", help="render every frame of a GaussianAvatars/VHAP split "
                   "(transforms_*.json) at its camera and FLAME parameters into the folder -o, under its file_path")
    r.add_argument("--dataset-flame", choices=FLAME_SOURCES, default="split",
                   help="split: each frame's flame_param_path, else its timestep_index into the avatar's "
                        "flame_param.npz; avatar: always the latter (GaussianAvatars' fine-tuned parameters)")
    r.add_argument("--backend", default="auto", choices=BACKENDS, help=BACKEND_HELP)
    r.add_argument("-o", "--output", required=True, metavar="OUT", help="out.mp4, or a folder for PNG frames")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(run=lazy_command(COMMANDS, "cmd_render"))

    a = sub.add_parser("app", help="the desktop app: live playback, emotion sliders, curves, recording")
    add_avatar_arguments(a, required=False)
    add_performance_arguments(a)
    add_view_arguments(a)
    a.add_argument("--size", type=argument(parse_size), metavar="WxH",
                   help="size of File → Save PNG snapshot and where File → Record starts (default: the view's size, "
                        "and the last recording's)")
    a.add_argument("--backend", default="auto", choices=BACKENDS, help=BACKEND_HELP)
    a.add_argument("--paused", action="store_true", help="open paused at the first frame instead of playing")
    a.add_argument("--snapshot", metavar="PNG", help="render the first frame, save a grab of the window, exit")
    a.set_defaults(run=lazy_command(COMMANDS, "cmd_app"))

    i = sub.add_parser("info", help="what a file or folder the studio reads or writes holds: avatar, demo, "
                       "generator, stimuli folder or manifest, camera or transforms*.json, FLAME, blendshapes, …")
    i.add_argument("path", help="the folder or file to describe")
    i.set_defaults(run=lazy_command(COMMANDS, "cmd_info"))

    add_learning_commands(sub)
    add_export_commands(sub)
    add_stimulus_commands(sub)

    c = sub.add_parser("compare", help="PSNR and SSIM of rendered images against captured ones")
    c.add_argument("predictions", metavar="PRED_DIR", help="the rendered images (e.g. made by render --dataset)")
    c.add_argument("truths", metavar="GT_DIR", help="the captured images (with --dataset: the dataset's folder)")
    c.add_argument("--dataset", metavar="JSON", help="pair by the frames' file_path of this transforms*.json and "
                                                     "composite the captures through their fg_mask_path masks")
    c.add_argument("--background", type=argument(parse_colour), default="white", metavar="COLOUR",
                   help="what the renders were made on, for masks and alpha: white, black, #rrggbb, or r,g,b in 0..1")
    c.add_argument("--json", action="store_true", help="print one JSON object (per image and overall)")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    c.set_defaults(run=lazy_command("avatar_app.compare", "cmd_compare"))

    b = sub.add_parser("build-demo", help="regenerate the demo assets into a folder (--out DIR), or over the "
                       "packaged ones (--in-place)")
    where = b.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", metavar="DIR", help="folder to write the demo into: new, empty, or an earlier "
                       "build-demo's")
    where.add_argument("--in-place", action="store_true", help=f"overwrite the packaged demo that --demo uses "
                       f"({DEMO_DIR}; in a git checkout, the committed files)")
    b.add_argument("--no-speech", action="store_true", help="no espeak-ng: keep the folder's speech.wav, or copy "
                   "the packaged one")
    b.set_defaults(run=lazy_command(COMMANDS, "cmd_build_demo"))
    return parser


def version() -> str:
    """The installed package's version (`pip install -e .` installs it), read only when asked."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("talking-head-studio")
    except PackageNotFoundError:
        return "unknown (not installed)"


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
