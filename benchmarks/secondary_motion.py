"""Secondary motion of the learned model's expression stream at zero emotion, in mm.

With every emotion at 0 the generator's expression weights are not exactly 0: the model keeps
the small secondary motion of talking (brows, cheeks) that the expression set explains. This
plays the demo clip through a generator folder (default: the shipped model) with all emotions
at 0 and reports, for the expression stream ΔV_E = w_E·B_E: its largest vertex displacement, the
RMS over frames of each frame's largest vertex displacement, and the Pearson correlation of that
per-frame largest displacement with the speech stream's (ΔV_A = w_A·B_A); per expression
blendshape, its weight range and the correlation of its weight with the jaw-opening weight
(the speech blendshape that moves most).

    python benchmarks/secondary_motion.py                   # the shipped model
    python benchmarks/secondary_motion.py --model DIR       # a generator folder
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from assets import DEMO_AUDIO, MODEL_DIR
from avatar_app.avatar import load_learned
from avatar_app.clip import clip_from_audio

FPS = 30.0


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1]) if np.std(a) > 1e-12 and np.std(b) > 1e-12 else 0.0


def measure(model_dir: Path) -> dict:
    """The numbers above for one generator folder, on the demo clip."""
    driver, model = load_learned(model_dir)
    clip = clip_from_audio(DEMO_AUDIO, driver, FPS)
    zero = np.zeros((clip.num_frames, len(driver.emotion_names)), np.float32)
    speech, expression = driver.weights(clip.features, zero)
    per_frame = [np.linalg.norm(np.tensordot(w, basis, 1), axis=2).max(axis=1) * 1e3
                 for w, basis in ((speech, model.speech_basis), (expression, model.expression_basis))]
    jaw = int(np.argmax(np.linalg.norm(model.speech_basis, axis=2).max(axis=1)))
    return {
        "frames": clip.num_frames,
        "speech_max_mm": float(per_frame[0].max()),
        "expression_max_mm": float(per_frame[1].max()),
        "expression_rms_mm": float(np.sqrt(np.mean(np.square(per_frame[1])))),
        "correlation_with_speech": _correlation(per_frame[0], per_frame[1]),
        "jaw": model.speech_names[jaw],
        "curves": [(name, float(expression[:, k].min()), float(expression[:, k].max()),
                    _correlation(expression[:, k], speech[:, jaw]))
                   for k, name in enumerate(model.expression_names)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODEL_DIR, help="generator folder (default: the shipped model)")
    result = measure(parser.parse_args().model)
    print(f"demo clip, {result['frames']} frames, every emotion at 0:")
    print(f"  speech stream:     largest vertex displacement {result['speech_max_mm']:.2f} mm")
    print(f"  expression stream: largest {result['expression_max_mm']:.2f} mm, RMS over frames of the "
          f"per-frame largest {result['expression_rms_mm']:.2f} mm, correlation with the speech stream "
          f"{result['correlation_with_speech']:+.2f}")
    print(f"  {'curve':<20} {'min':>7} {'max':>7}  r with {result['jaw']}")
    for name, low, high, r in result["curves"]:
        print(f"  {name:<20} {low:7.3f} {high:7.3f}  {r:+.2f}")


if __name__ == "__main__":
    main()
