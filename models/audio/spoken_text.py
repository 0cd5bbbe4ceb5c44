"""A sentence spoken by espeak-ng, to drive the face without a recording (`--text`, a design's
`text` column).

The `espeak-ng` command speaks it in a process of its own, so the same text, language, voice
and rate always give the same samples (the library carries state from one utterance into the
next; a fresh process starts from the same one). Without espeak-ng, asking for speech is one
InputError saying how to install it. This module imports nothing heavy until it speaks, so
the command-line parser can take its defaults.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from common.errors import InputError

if TYPE_CHECKING:
    from .sources import Audio

DEFAULT_LANGUAGE = "en-us"
DEFAULT_RATE = 175  # words per minute, espeak-ng's own default
MIN_RATE, MAX_RATE = 80, 450  # what espeak-ng speaks
MAX_CHARACTERS = 20_000  # about 20 minutes of speech
INSTALL_HINT = ("speaking a text needs espeak-ng, which is not installed: install it (Debian/Ubuntu: "
                "sudo apt-get install espeak-ng; Fedora: sudo dnf install espeak-ng; macOS: brew install espeak-ng; "
                "Windows: the installer from https://github.com/espeak-ng/espeak-ng/releases)")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")


@dataclass(frozen=True)
class SpokenText:
    """What to say and how: an espeak-ng `language` (en-us, de, fr, …; `espeak-ng --voices`
    lists them), an optional voice `variant` (m1…m8, f1…f5, klatt, …; `espeak-ng
    --voices=variant`) and a `rate` in words per minute."""

    text: str
    language: str = DEFAULT_LANGUAGE
    variant: str | None = None
    rate: int = DEFAULT_RATE

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise InputError("the text to speak is empty")
        if len(self.text) > MAX_CHARACTERS:
            raise InputError(f"the text to speak has {len(self.text)} characters, more than the {MAX_CHARACTERS} "
                             "supported")
        if not _NAME.fullmatch(self.language):
            raise InputError(f"text language {self.language!r}: not a language name such as en-us or de")
        if self.variant is not None and not _NAME.fullmatch(self.variant):
            raise InputError(f"text voice {self.variant!r}: not a voice name such as m3, f2 or klatt")
        if isinstance(self.rate, bool) or int(self.rate) != self.rate or not MIN_RATE <= self.rate <= MAX_RATE:
            raise InputError(f"text rate {self.rate}: must be a whole number of words per minute in "
                             f"{MIN_RATE}..{MAX_RATE}")

    def describe(self) -> str:
        """The text as a short label, for messages and titles."""
        words = " ".join(self.text.split())
        return f"text \"{words if len(words) <= 40 else words[:39] + '…'}\""


def espeak_exe() -> str:
    """The espeak-ng command, or an InputError saying how to install it."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise InputError(INSTALL_HINT)
    return exe


@functools.lru_cache(maxsize=8)
def speak(spoken: SpokenText) -> Audio:
    """The text spoken by espeak-ng at its native rate (22050 Hz), in memory."""
    from .sources import load_wav  # noqa: PLC0415 - numpy and scipy only when speaking

    exe = espeak_exe()
    if spoken.variant is not None and spoken.variant not in _variants(exe):
        import difflib  # noqa: PLC0415 - only for the message

        close = difflib.get_close_matches(spoken.variant, _variants(exe), n=1)
        hint = f"did you mean {close[0]}?" if close else "espeak-ng --voices=variant lists them"
        raise InputError(f"text voice {spoken.variant}: espeak-ng has no such voice ({hint})")
    voice = spoken.language + (f"+{spoken.variant}" if spoken.variant else "")
    with tempfile.TemporaryDirectory(prefix="avatar-speech-") as scratch:
        wav = Path(scratch) / "speech.wav"
        done = subprocess.run([exe, "--stdin", "-b", "1", "-v", voice, "-s", str(spoken.rate), "-w", str(wav)],
                              input=spoken.text.encode("utf-8"), capture_output=True, check=False)
        if done.returncode != 0 or not wav.exists():
            message = " ".join(done.stderr.decode("utf-8", "replace").split()) or f"exit status {done.returncode}"
            if "voice does not exist" in message:
                raise InputError(f"text language {spoken.language}: espeak-ng has no such language "
                                 "(espeak-ng --voices lists them)")
            raise InputError(f"espeak-ng could not speak the text ({message})")
        audio = load_wav(wav)
    audio.samples.setflags(write=False)  # shared by every caller of the cache
    return audio


@functools.lru_cache(maxsize=1)
def espeak_version() -> str:
    """Which espeak-ng speaks ("eSpeak NG text-to-speech: 1.51"): another version may say the
    same text differently, so a study records it."""
    done = subprocess.run([espeak_exe(), "--version"], capture_output=True, text=True, check=False)
    return done.stdout.split("Data at")[0].strip() or "unknown"


@functools.lru_cache(maxsize=1)
def _variants(exe: str) -> tuple[str, ...]:
    listing = subprocess.run([exe, "--voices=variant"], capture_output=True, text=True, check=False).stdout
    return tuple(re.findall(r"!v/(\S+)", listing))
