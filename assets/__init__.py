"""The embedded demo (built by `avatar build-demo`): files only, found through DEMO_DIR."""
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent / "demo"
DEMO_FLAME = DEMO_DIR / "flame_demo.npz"
DEMO_AVATAR = DEMO_DIR / "avatar"
DEMO_BLENDSHAPES = DEMO_DIR / "blendshapes.npz"
DEMO_ARKIT_SHAPES = DEMO_DIR / "arkit_shapes.npz"  # ARKit's 52 targets on the demo head (models/rig/arkit.py)
DEMO_AUDIO = DEMO_DIR / "speech.wav"
MODEL_DIR = Path(__file__).resolve().parent / "model"  # the shipped learned model (`avatar train-speech`)
