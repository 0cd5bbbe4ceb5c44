"""`avatar build-demo`: regenerate the embedded demo deterministically from our own code."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from assets import DEMO_AUDIO
from avatar_app.demo.arkit_shapes import demo_arkit_shapes
from avatar_app.demo.avatar import paint_avatar
from avatar_app.demo.blendshapes import build_demo_blendshapes
from avatar_app.demo.eyelids import demo_eyelids
from avatar_app.demo.head import build_demo_head
from common.atomic import atomic_write
from common.errors import InputError
from models.audio.sources import load_wav, resample, save_wav
from models.rig.arkit import ARKIT_NAMES, ArkitShapes, save_arkit_shapes
from models.rig.flame import FlameParams, load_flame, save_flame_params
from models.rig.mapping import MappingRig
from renderer.ply import write_ply

DEMO_SENTENCE = ("Hello! I am your demo head. Move the emotion sliders, "
                 "and watch my face change while I speak.")
SPEECH_RATE = 16000


def synthesize_speech(text: str, path: Path) -> None:
    """Speak `text` with espeak-ng into a 16 kHz mono WAV."""
    if shutil.which("espeak-ng") is None:
        raise InputError("espeak-ng is not installed: it speaks the demo sentence (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), text], check=True)
        save_wav(resample(load_wav(raw), SPEECH_RATE), path)


def build_demo(out: Path, speech: bool = True) -> list[Path]:
    """Write the demo FLAME head, avatar, blendshapes, ARKit targets and speech clip into `out` (the packaged
    demo is DEMO_DIR: it is written only when named). Without `speech` (no espeak-ng) the
    folder keeps its speech.wav, or gets a copy of the packaged one."""
    out = Path(out)
    (out / "avatar").mkdir(parents=True, exist_ok=True)
    head = build_demo_head()
    flame_path = out / "flame_demo.npz"
    atomic_write(flame_path, lambda f: np.savez_compressed(f, **head.arrays, **demo_eyelids(head)))
    write_ply(paint_avatar(head), out / "avatar" / "point_cloud.ply")
    v = head.arrays["v_template"].shape[0]
    neutral = FlameParams.neutral(1, np.zeros(300, np.float32), np.zeros((1, v, 3), np.float32))
    save_flame_params(neutral, out / "avatar" / "flame_param.npz")
    flame = load_flame(flame_path)
    build_demo_blendshapes(MappingRig.of(flame)).save(out / "blendshapes.npz")
    targets = demo_arkit_shapes(head, flame)
    save_arkit_shapes(ArkitShapes(ARKIT_NAMES, np.stack(list(targets.values())), "demo ARKit targets"),
                      out / "arkit_shapes.npz")
    written = [flame_path, out / "avatar" / "point_cloud.ply", out / "avatar" / "flame_param.npz",
               out / "blendshapes.npz", out / "arkit_shapes.npz"]
    if speech:
        synthesize_speech(DEMO_SENTENCE, out / "speech.wav")
        written.append(out / "speech.wav")
    elif not (out / "speech.wav").exists() and DEMO_AUDIO.is_file():
        atomic_write(out / "speech.wav", lambda f: f.write(DEMO_AUDIO.read_bytes()))
        written.append(out / "speech.wav")
    return written
