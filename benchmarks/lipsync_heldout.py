"""Lip sync on voices and languages never trained on: the learned generator against the
signal-based driver (and the planted truth, the ceiling), on espeak-ng clips in the held-out
languages (fr, nl, pt) and voice variants (m7, f4, f5) with viseme targets planted at espeak's
own phoneme timings (`models.learning.espeak_corpus`). The same table as
`avatar evaluate --espeak-heldout N --generator DIR --signal`, as markdown.

`--envelopes` adds the jaw–envelope correlation under other published definitions of the
speech envelope (Hilbert magnitude low-passed at 4 or 10 Hz, log-compressed, band-limited; and
the best over lags of ±100 ms), to show whether the ranking depends on the definition.

    python benchmarks/lipsync_heldout.py [--generator assets/model] [--clips 24] [--envelopes]
"""
from __future__ import annotations

import argparse

import numpy as np
from scipy.signal import butter, hilbert, sosfiltfilt

from avatar_app.learn_commands import drivers, heldout_corpus
from models.audio.sources import Audio, read_all
from models.audio.synth_voice import SPEECH_NAMES
from models.learning.espeak_corpus import is_bilabial
from models.learning.evaluation import lipsync_metrics, measured_visemes, predicted_vertices, speech_envelope

COLUMNS = {  # key: (heading, better)
    "lve_mm2": ("LVE mm²", "lower"),
    "fdd_mm2": ("FDD mm²", "nearer 0"),
    "jaw_envelope_r_median": ("jaw–envelope r, median", "higher"),
    "jaw_envelope_r_min": ("jaw–envelope r, lowest", "higher"),
    "jaw_f2_envelope_r_median": ("jaw–F2-envelope r, median", "higher"),
    "jaw_f2_envelope_r_min": ("jaw–F2-envelope r, lowest", "higher"),
    "bilabial_closed_pct": ("/p b m/ closed %", "higher"),
}


def hilbert_envelope(audio: Audio, fps: float, frames: int, cutoff_hz: float, log: bool = False,
                     band: tuple[float, float] | None = None) -> np.ndarray:
    """|analytic signal| (of the band-passed audio), low-passed at `cutoff_hz`, sampled at each frame."""
    samples = read_all(audio).astype(np.float64)
    if band is not None:
        samples = sosfiltfilt(butter(4, band, btype="bandpass", fs=audio.sample_rate, output="sos"), samples)
    envelope = sosfiltfilt(butter(2, cutoff_hz, fs=audio.sample_rate, output="sos"), np.abs(hilbert(samples)))
    if log:
        envelope = np.log(np.maximum(envelope, 1e-4))
    return envelope[np.round(np.arange(frames) * audio.sample_rate / fps).astype(int).clip(0, len(samples) - 1)]


ENVELOPES = {
    "RMS 40 ms (the table's)": lambda a, fps, n: speech_envelope(a, fps, n),
    "Hilbert, 10 Hz": lambda a, fps, n: hilbert_envelope(a, fps, n, 10.0),
    "Hilbert, 4 Hz": lambda a, fps, n: hilbert_envelope(a, fps, n, 4.0),
    "Hilbert, 10 Hz, log": lambda a, fps, n: hilbert_envelope(a, fps, n, 10.0, log=True),
    "Hilbert, 10 Hz, 100–1000 Hz": lambda a, fps, n: hilbert_envelope(a, fps, n, 10.0, band=(100.0, 1000.0)),
    "Hilbert, 10 Hz, 300–1000 Hz (F1)": lambda a, fps, n: hilbert_envelope(a, fps, n, 10.0, band=(300.0, 1000.0)),
    "RMS 40 ms, 800–2200 Hz (F2)": lambda a, fps, n: speech_envelope(a, fps, n, (800.0, 2200.0)),
}


def best_lagged_r(curve: np.ndarray, envelope: np.ndarray, lags: int) -> float:
    """The highest Pearson r over shifts of the curve against the envelope by up to ±`lags` frames."""
    return max(np.corrcoef(curve[max(k, 0):len(curve) + min(k, 0)], envelope[max(-k, 0):len(envelope) - max(k, 0)])[0, 1]
               for k in range(-lags, lags + 1))


def envelope_table(corpus, under_test) -> None:
    jaw = SPEECH_NAMES.index("jaw_open")
    rows = {}
    for name, model, drive in [*under_test, ("planted truth", corpus.planted, lambda s: corpus.truth[s.name])]:
        plain, lagged = {k: [] for k in ENVELOPES}, {k: [] for k in ENVELOPES}
        for clip in corpus.speech:
            weights = drive(clip)
            curve = measured_visemes(corpus.planted, predicted_vertices(model, lambda _: weights, clip), clip.template)[:, jaw]
            for key, envelope_of in ENVELOPES.items():
                envelope = envelope_of(clip.audio, clip.fps, len(curve))
                plain[key].append(np.corrcoef(curve, envelope)[0, 1])
                lagged[key].append(best_lagged_r(curve, envelope, int(round(0.1 * clip.fps))))
        rows[name] = {k: (np.median(plain[k]), np.min(plain[k]), np.median(lagged[k])) for k in ENVELOPES}
    print("\njaw–envelope r under other envelope definitions: median / lowest over clips (median best over ±100 ms lags)\n")
    print("| envelope | " + " | ".join(rows) + " |")
    print("|---|" + "---:|" * len(rows))
    for key in ENVELOPES:
        print(f"| {key} | " + " | ".join(f"{m:.3f} / {lo:.3f} ({lag:.3f})" for m, lo, lag in (row[key] for row in rows.values())) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", default="assets/model", help="the learned generator folder")
    parser.add_argument("--clips", type=int, default=24, help="held-out clips")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (as evaluate's --corpus-seed)")
    parser.add_argument("--envelopes", action="store_true", help="also the envelope-definition table")
    args = parser.parse_args()
    corpus = heldout_corpus(args.clips, args.seed + 1)
    under_test = drivers(argparse.Namespace(generator=[args.generator], signal=True, signal_blendshapes=None))
    rows = {name: lipsync_metrics(corpus.planted, model, drive, corpus.speech, corpus.phonemes)
            for name, model, drive in under_test}
    rows["planted truth"] = lipsync_metrics(corpus.planted, corpus.planted, lambda s: corpus.truth[s.name],
                                            corpus.speech, corpus.phonemes)
    bilabials = sum(is_bilabial(name) for phonemes in corpus.phonemes.values() for name, _, _ in phonemes)
    print(f"{len(corpus.speech)} held-out clips, {bilabials} bilabial phonemes\n")
    print("| metric (better) | " + " | ".join(rows) + " |")
    print("|---|" + "---:|" * len(rows))
    for key, (heading, better) in COLUMNS.items():
        print(f"| {heading} ({better}) | " + " | ".join(f"{row[key]:.3g}" for row in rows.values()) + " |")
    if args.envelopes:
        envelope_table(corpus, under_test)


if __name__ == "__main__":
    main()
