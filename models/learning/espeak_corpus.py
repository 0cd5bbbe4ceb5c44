"""Talking clips spoken by espeak-ng, with viseme targets that follow its real phoneme timings.

The built-in synthesizer (`models.audio.synth_voice`) knows its mouth shapes exactly but has one
sound; a generator trained only on it does not carry over to other voices. espeak-ng speaks
many languages in many voices, and its library reports every phoneme (IPA name) with its
position in the audio (`espeakEVENT_PHONEME`, `audio_position` in ms). Each phoneme's IPA
symbol maps to a viseme target over SPEECH_NAMES (`viseme_of`; bilabials /p b m/ close the
lips), and `viseme_curves` turns the timed targets into the planted weights with the same
coarticulation as the built-in synthesizer's.

libespeak-ng is driven through ctypes (its `speak_lib.h` API, AUDIO_OUTPUT_SYNCHRONOUS with a
synth callback); without it, asking for espeak clips is a one-line `InputError`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.signal import resample_poly

from common.errors import InputError
from models.audio.sources import Audio
from models.audio.synth_voice import viseme_curves

SAMPLE_RATE = 16000  # clips are resampled to the generator's analysis rate
TRAIN_LANGUAGES = ("en-us", "de", "es", "it", "pl")
TRAIN_VARIANTS = ("m1", "m2", "m3", "m4", "f1", "f2", "f3", "klatt")
HELDOUT_LANGUAGES = ("fr", "nl", "pt")  # never in training ...
HELDOUT_VARIANTS = ("m7", "f4", "f5")  # ... and neither are these voices

# Words of each language, rich in bilabials and in every vowel, for random sentences.
WORDS: dict[str, tuple[str, ...]] = {
    "en-us": ("a", "big", "map", "baby", "moon", "people", "bring", "warm", "soup", "blue", "fish", "shop",
              "house", "open", "the", "window", "please", "maybe", "tomorrow", "we", "will", "sleep", "above",
              "my", "mother", "paper", "boat", "teeth", "cheap", "jump", "happy", "very"),
    "de": ("ein", "Baum", "mit", "Blumen", "Papa", "bringt", "Milch", "und", "Brot", "schön", "müde", "Mond",
           "über", "Bäume", "Wasser", "Haus", "Mittag", "Bruder", "wir", "gehen", "heute", "Pferd", "Apfel",
           "Berg", "kommen", "bitte", "Zimmer", "Suppe", "Fenster", "grün"),
    "es": ("el", "pueblo", "bonito", "mamá", "papá", "bebe", "agua", "buenos", "días", "mañana", "playa",
           "pan", "mesa", "barco", "miramos", "campo", "sombra", "puerta", "hombre", "mujer", "bien", "mucho",
           "vamos", "lluvia", "cielo", "perro", "noche", "limón"),
    "it": ("il", "bambino", "mangia", "pane", "buono", "mamma", "porta", "piove", "sempre", "bello", "mare",
           "ombra", "tempo", "primavera", "cappello", "bicchiere", "amico", "piazza", "uomo", "luna", "oggi",
           "molto", "bianco", "pomodoro", "sabbia", "giorno"),
    "pl": ("mama", "bardzo", "pięknie", "robi", "obiad", "miasto", "brzeg", "morze", "pan", "pani", "bez",
           "mleko", "biały", "pomidor", "może", "jabłko", "proszę", "babcia", "szybko", "dobry", "wieczór",
           "zupa", "okno", "przyjaciel", "mówimy"),
    "fr": ("le", "beau", "papa", "maman", "bonjour", "pomme", "pain", "beaucoup", "pluie", "parfum", "maison",
           "bleu", "plus", "tomber", "matin", "monde", "bouche", "mouton", "peu", "bien", "sombre", "lumière",
           "soupe", "chambre", "ami"),
    "nl": ("de", "mooie", "boom", "mama", "papa", "brood", "melk", "boven", "blauw", "maan", "appel", "spelen",
           "buiten", "morgen", "praten", "lamp", "pijp", "bloem", "mensen", "boek", "water", "vandaag"),
    "pt": ("o", "menino", "bebe", "papai", "mamãe", "bom", "pão", "manhã", "barco", "praia", "bonito", "campo",
           "muito", "obrigado", "sempre", "mesa", "sombra", "pombo", "amigo", "limão", "chuva"),
}

BILABIALS = "pbmɓ"
_IPA_VISEMES: dict[str, tuple[float, float, float, float]] = {}  # filled below: symbol → target
for _symbols, _target in (
    (BILABIALS, (0.0, 0.0, 0.0, 1.0)),  # bilabials close the lips
    ("fvɱʋ", (0.1, 0.0, 0.0, 0.5)),  # labiodentals: lower lip to the teeth
    ("aɑæɐäɶ", (0.9, 0.2, 0.0, 0.0)),
    ("eɛ", (0.5, 0.7, 0.0, 0.0)),
    ("iɪɨ", (0.3, 0.9, 0.0, 0.0)),
    ("əɘɜʌɞ", (0.45, 0.3, 0.0, 0.0)),
    ("oɔɒɤ", (0.55, 0.0, 0.75, 0.0)),
    ("øœɵ", (0.45, 0.2, 0.7, 0.0)),
    ("uʊɯ", (0.25, 0.0, 1.0, 0.0)),
    ("yʏ", (0.25, 0.1, 0.9, 0.0)),
    ("wɥ", (0.15, 0.0, 0.9, 0.0)),
    ("jʝ", (0.2, 0.7, 0.0, 0.0)),
    ("tdnlɾrɹɫʎɲɳɭʈɖɬ", (0.2, 0.3, 0.0, 0.0)),
    ("szθðɕʑ", (0.15, 0.4, 0.0, 0.0)),
    ("ʃʒʂʐ", (0.2, 0.0, 0.6, 0.0)),
    ("kɡgŋxɣçqʁʀχɢ", (0.3, 0.1, 0.0, 0.0)),
    ("hɦʔ", (0.25, 0.1, 0.0, 0.0)),
):
    for _symbol in _symbols:
        _IPA_VISEMES[_symbol] = _target
SILENT = (0.0, 0.0, 0.0, 0.0)  # pauses: espeak reports them as phonemes without a name
_FALLBACK = (0.3, 0.2, 0.0, 0.0)  # a symbol missing from the table: a neutral half-open mouth
_FRICATIVE_RELEASE = "ʃʒɕʑ"  # affricates tʃ dʒ tɕ dʑ look like their fricative

# speak_lib.h (API revision 12)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_PHONEME_EVENTS, _PHONEME_IPA = 0x0001, 0x0002
_EVENT_LIST_TERMINATED, _EVENT_WORD, _EVENT_PHONEME = 0, 1, 7
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE, _PITCH, _RANGE = 1, 3, 4


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """espeak_EVENT: six 4-byte fields, then a pointer and an 8-byte union (40 bytes on 64-bit)."""

    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Spoken:
    """What espeak-ng said: int16 samples at its native rate, (ms, IPA name) phoneme events and
    the ms at which each word starts."""

    samples: np.ndarray
    sample_rate: int
    events: tuple[tuple[int, str], ...]
    words: tuple[int, ...]


@dataclass(frozen=True)
class Request:
    """What to say: `voice` is a language, optionally `+variant`; `rate` in words per minute,
    `pitch` and `pitch_range` 0..100."""

    text: str
    voice: str = "en-us"
    rate: int = 175
    pitch: int = 50
    pitch_range: int = 50


def _library() -> ctypes.CDLL:
    name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
    try:
        return ctypes.CDLL(name)
    except OSError:
        raise InputError("espeak corpus: libespeak-ng is not installed (apt-get install espeak-ng)") from None


def available() -> bool:
    """Whether libespeak-ng can be loaded."""
    try:
        _library()
    except InputError:
        return False
    return True


def _speak_here(request: Request) -> Spoken:
    """Speak in this process, which must not have initialised the library before: espeak-ng
    carries state from one utterance into the next (pitch and timing), and draws from libc's
    rand(), so only a fresh process with a fixed rand() seed says the same thing every time."""
    lib = _library()
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _PHONEME_EVENTS | _PHONEME_IPA)
    if sample_rate <= 0:
        raise InputError("espeak corpus: libespeak-ng failed to initialise (is espeak-ng-data installed?)")
    chunks: list[np.ndarray] = []
    events: list[tuple[int, str]] = []
    words: list[int] = []

    def receive(wav, count: int, event) -> int:
        if wav and count > 0:
            chunks.append(np.ctypeslib.as_array(wav, (count,)).copy())
        i = 0
        while event[i].type != _EVENT_LIST_TERMINATED:
            if event[i].type == _EVENT_PHONEME:
                name = bytes(event[i].id.string).split(b"\0")[0].decode("utf-8", "replace")
                events.append((int(event[i].audio_position), name))
            elif event[i].type == _EVENT_WORD:
                words.append(int(event[i].audio_position))
            i += 1
        return 0

    callback = _CALLBACK(receive)
    lib.espeak_SetSynthCallback(callback)
    if lib.espeak_SetVoiceByName(request.voice.encode()) != 0:
        raise InputError(f"espeak corpus: espeak-ng has no voice {request.voice!r}")
    for parameter, value in ((_RATE, request.rate), (_PITCH, request.pitch), (_RANGE, request.pitch_range)):
        lib.espeak_SetParameter(parameter, int(value), 0)
    ctypes.CDLL(None).srand(1)
    data = request.text.encode("utf-8")
    if lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None) != 0:
        raise InputError(f"espeak corpus: espeak-ng could not speak {request.text!r}")
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    return Spoken(samples, sample_rate, tuple(events), tuple(words))


def speak_all(requests: Sequence[Request], workers: int = 2) -> list[Spoken]:
    """Each request spoken by espeak-ng in a fresh process of its own (see `_speak_here`), so the
    same request always gives the same samples and events."""
    _library()
    pool = multiprocessing.get_context("fork").Pool(max(1, min(workers, len(requests))), maxtasksperchild=1)
    try:
        return pool.map(_speak_here, requests, chunksize=1)
    finally:
        pool.close()  # let the workers end by themselves: no SIGTERM (which the command turns into Ctrl-C)
        pool.join()


def speak(request: Request) -> Spoken:
    """One request (see `speak_all`)."""
    return speak_all([request])[0]


def phoneme_segments(events: Sequence[tuple[int, str]], duration: float) -> list[tuple[str, float, float]]:
    """(IPA name, start s, end s), contiguous from 0 to `duration`: each phoneme lasts until the
    next one starts. Events that only modify the previous phoneme (e.g. palatalisation ʲ, length ː)
    extend it; audio before the first phoneme is a pause ("")."""
    segments: list[list] = [["", 0.0, 0.0]]
    for position, name in events:
        start = min(position / 1000.0, duration)
        if name and _base(name) is None:
            continue  # a modifier: the previous phoneme goes on
        if start > segments[-1][1]:
            segments[-1][2] = start
            segments.append([name, start, start])
        else:  # same time: the later event names the phoneme
            segments[-1][0] = name
    segments[-1][2] = duration
    return [(name, start, end) for name, start, end in segments if end > start]


def _base(name: str) -> str | None:
    """The symbol that decides a phoneme's viseme: its first letter in the table (an affricate's
    fricative), or None if it has none."""
    letters = [c for c in name if c in _IPA_VISEMES]
    if not letters:
        return None
    if letters[0] in "td" and len(letters) > 1 and letters[1] in _FRICATIVE_RELEASE:
        return letters[1]
    return letters[0]


def viseme_of(name: str) -> tuple[float, float, float, float]:
    """The viseme target over SPEECH_NAMES of an IPA phoneme name reported by espeak-ng."""
    if not name:
        return SILENT
    base = _base(name)
    return _FALLBACK if base is None else _IPA_VISEMES[base]


def is_bilabial(name: str) -> bool:
    """/p b m/ (and implosive ɓ): the lips must close."""
    return _base(name) in set(BILABIALS)


@dataclass(frozen=True)
class EspeakSpec:
    """Which espeak clips to make; the same spec gives the same clips."""

    clips: int = 60
    languages: tuple[str, ...] = TRAIN_LANGUAGES
    variants: tuple[str, ...] = TRAIN_VARIANTS
    rate: tuple[int, int] = (120, 230)  # words per minute
    pitch: tuple[int, int] = (25, 75)
    pitch_range: tuple[int, int] = (20, 80)
    seed: int = 0


HELDOUT = EspeakSpec(clips=24, languages=HELDOUT_LANGUAGES, variants=HELDOUT_VARIANTS, seed=1)


@dataclass(frozen=True)
class EspeakClip:
    """One clip: 16 kHz audio, its phonemes (IPA, start s, end s) and planted viseme weights."""

    name: str
    audio: Audio
    phonemes: tuple[tuple[str, float, float], ...]
    visemes: np.ndarray  # [frames, 4] over SPEECH_NAMES


def espeak_clips(spec: EspeakSpec, seconds: float, fps: float) -> list[EspeakClip]:
    """`spec.clips` clips of exactly `seconds`, cycling through the languages; each a random
    sentence of the language's words in a random variant, rate, pitch and pitch range, placed
    after a short random silence and cut at the last word that still fits."""
    unknown = [language for language in spec.languages if language not in WORDS]
    if unknown:
        raise InputError(f"espeak corpus: no words for {', '.join(unknown)}; known: {', '.join(WORDS)}")
    rng = np.random.default_rng(spec.seed)
    plans = []
    for k in range(spec.clips):
        language = spec.languages[k % len(spec.languages)]
        variant = spec.variants[int(rng.integers(len(spec.variants)))]
        settings = [int(rng.integers(low, high + 1)) for low, high in (spec.rate, spec.pitch, spec.pitch_range)]
        words = [str(w) for w in rng.choice(WORDS[language], size=int(rng.integers(4, 10)))]
        if rng.random() < 0.3:
            words[int(rng.integers(1, len(words) - 1))] += ","
        name = f"espeak-{language}-{variant}/clip{k:03d}"
        plans.append((name, Request(" ".join(words), f"{language}+{variant}", *settings), float(rng.uniform(0.1, 0.35)),
                      int(rng.integers(2**31))))
    spoken = speak_all([request for _, request, _, _ in plans])
    frames = int(round(seconds * fps))
    out = []
    for (name, _, lead, seed), said in zip(plans, spoken):
        length = len(said.samples) / said.sample_rate
        end = _cut(said, length, seconds - lead - 0.1)
        phonemes = [("", 0.0, lead)] + [(symbol, lead + start, lead + stop) for symbol, start, stop
                                        in phoneme_segments(said.events, end)]
        phonemes.append(("", lead + end, seconds))
        visemes = viseme_curves([(viseme_of(symbol), start, stop) for symbol, start, stop in phonemes], fps, frames)
        audio = _placed(said, lead, end, seconds, np.random.default_rng(seed))
        out.append(EspeakClip(name, audio, tuple(phonemes), visemes))
    return out


def _cut(said: Spoken, length: float, room: float) -> float:
    """Seconds of speech to keep: all if they fit in `room`, else up to the last word start that
    does (at least the first word)."""
    if length <= room:
        return length
    starts = [ms / 1000.0 for ms in said.words if 0 < ms / 1000.0 <= room]
    return max(starts) if starts else min(length, room)


def _placed(said: Spoken, lead: float, end: float, seconds: float, rng: np.random.Generator) -> Audio:
    """The first `end` s of speech at 16 kHz after `lead` s of silence (10 ms fade at the cut),
    padded to `seconds`, at a random peak level (-9..-3 dBFS) over a faint noise floor (-60 dB),
    as in a recording."""
    speech = resample_poly(said.samples.astype(np.float64) / 32768.0, SAMPLE_RATE, said.sample_rate)
    speech = speech[: int(round(end * SAMPLE_RATE))]
    fade = min(len(speech), int(0.01 * SAMPLE_RATE))
    speech[len(speech) - fade:] *= np.linspace(1.0, 0.0, fade)
    out = np.zeros(int(round(seconds * SAMPLE_RATE)))
    start = int(round(lead * SAMPLE_RATE))
    out[start:start + len(speech)] = speech[: len(out) - start]
    peak = np.abs(out).max(initial=0.0)
    if peak > 0:
        out *= 10.0 ** (rng.uniform(-9.0, -3.0) / 20.0) / peak
        out += 10.0 ** (-60.0 / 20.0) * np.abs(out).max() * rng.standard_normal(len(out))
    return Audio(out.astype(np.float32), SAMPLE_RATE)
