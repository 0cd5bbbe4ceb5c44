"""CPU real-time factor of the speech generator (audio seconds per compute second), per front-end.

Each run goes from raw audio to weights as the app does: resampling, the front-end's features
(STFT + log-mel + conv, or wav2vec2), the TCN decoder, at 30 fps. The wav2vec2 front-end uses a
randomly initialised wav2vec2-base-sized model (`Wav2Vec2Config()` defaults; no download), which
costs what the pretrained one costs. docs/architecture.md §Conventions targets ≥ 50× real time for the speech model.

    python benchmarks/generator_speed.py            # 2 threads, as the 2-core target machine
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import Wav2Vec2Config, Wav2Vec2Model

from models.audio.sources import Audio
from models.drivers.generator import GeneratorConfig, LearnedDriver, SpeechGenerator
from models.rig.blendshapes import BlendshapeModel

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo" / "blendshapes.npz"
FPS = 30.0
RATE = 44100  # a typical WAV rate, so resampling to 16 kHz is part of the cost


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """A syllable-rate amplitude-modulated harmonic tone with a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t), 0.0, None)
    tone = sum(np.sin(2 * np.pi * 140.0 * k * t) / k for k in range(1, 6))
    return (0.3 * envelope * tone + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def timed(driver: LearnedDriver, audio: np.ndarray, repeats: int) -> tuple[float, float]:
    """Fastest seconds for the features and for the decoder (the least disturbed by other load)."""
    feature_s, decoder_s = [], []
    neutral = np.zeros((round(FPS * len(audio) / RATE), len(driver.emotion_names)), np.float32)
    for _ in range(repeats):
        start = time.perf_counter()
        features = driver.analyse(Audio(audio, RATE), FPS)
        middle = time.perf_counter()
        driver.weights(features, neutral)
        feature_s.append(middle - start)
        decoder_s.append(time.perf_counter() - middle)
    return min(feature_s), min(decoder_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = BlendshapeModel.load(DEMO)
    with tempfile.TemporaryDirectory() as directory:
        torch.manual_seed(0)
        Wav2Vec2Model(Wav2Vec2Config()).save_pretrained(directory)
        drivers = {
            "mel": LearnedDriver(SpeechGenerator(GeneratorConfig.for_model(model))),
            "wav2vec2 (base size)": LearnedDriver(
                SpeechGenerator(GeneratorConfig.for_model(model, front_end="wav2vec2", wav2vec2_dir=directory))
            ),
        }
        config = next(iter(drivers.values())).generator.config
        print(f"torch {torch.__version__}, {args.threads} threads, {FPS:g} fps, {RATE} Hz input; "
              f"TCN width {config.width}, {config.layers} layers, kernel {config.kernel}\n")
        print("| front-end | audio s | features s | decoder s | total s | × real time |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, driver in drivers.items():
            timed(driver, speech_like(1.0), 1)  # warm-up
            for seconds in (10.0, 60.0):
                repeats = 10 if name == "mel" else 2 if seconds < 60 else 1
                features_s, decoder_s = timed(driver, speech_like(seconds), repeats)
                total = features_s + decoder_s
                print(f"| {name} | {seconds:g} | {features_s:.3f} | {decoder_s:.3f} | {total:.3f} | "
                      f"{seconds / total:.1f} |", flush=True)


if __name__ == "__main__":
    main()
