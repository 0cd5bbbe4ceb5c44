"""Trial lists for a perceptual study: one randomized, counterbalanced list per participant.

Every participant sees every stimulus of the manifest `repeats` times, so each condition equally
often. Without a Latin-square factor the order is shuffled per participant. With one, the trials
come in blocks, one block per level of that factor, and the block order follows a balanced Latin
square (Williams design): over each full cycle of participants every level takes every block
position equally often and follows every other level equally often (for an odd number of levels
the cycle is the square and its mirror); which level takes which symbol of the square is drawn
from the seed. Within a block the order is shuffled. The lists depend only on the manifest, the
seed and the settings.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import InputError
from common.files import csv_text, parse_json, read_text_file

from .design import COLUMNS

PENDING = "pending"  # a manifest's status of a stimulus its batch has not made (yet)

MAX_PARTICIPANTS, MAX_REPEATS = 100_000, 1000


@dataclass(frozen=True)
class StimulusEntry:
    id: str
    file: str
    levels: dict[str, str]


@dataclass(frozen=True)
class Trial:
    participant: int
    trial: int
    block: int
    stimulus: StimulusEntry


def read_manifest(path: str | Path) -> tuple[list[StimulusEntry], list[str]]:
    """The stimuli made so far of a manifest.json or manifest.csv written by `avatar stimuli`,
    and the ids of those still pending (a batch that is running, or was stopped, writes its
    manifest as it goes). A failed stimulus is refused: waiting will not make it."""
    path = Path(path)
    text = read_text_file(path, "stimulus manifest")
    try:
        if path.suffix.lower() == ".json":
            rows = [{"id": r["id"], "status": r["status"], "mp4": r.get("outputs", {}).get("mp4", {}).get("file", ""),
                     **r.get("levels", {})} for r in parse_json(text, str(path), "stimulus manifest")["stimuli"]]
        else:
            rows = [{key: csv_text(value) for key, value in row.items() if isinstance(key, str) and isinstance(value, str)}
                    for row in csv.DictReader(io.StringIO(text))]
            if rows and not {"id", "status", "mp4"} <= set(rows[0]):
                raise KeyError("id, status, mp4")
        if not all(isinstance(r[k], str) for r in rows for k in ("id", "status", "mp4")):
            raise TypeError("id, status and mp4 must be text")
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError, csv.Error) as err:
        raise InputError(f"{path}: not a stimulus manifest ({type(err).__name__}: {' '.join(str(err).split())[:200]})") from None
    failed = [r["id"] for r in rows if r["status"] not in ("ok", PENDING)]
    if failed:
        raise InputError(f"{path}: {len(failed)} stimuli failed ({', '.join(failed[:5])}); see each one's error, "
                         "fix the design or its inputs and rerun `avatar stimuli` first")
    if not rows:
        raise InputError(f"{path}: the manifest lists no stimuli")
    pending = [r["id"] for r in rows if r["status"] == PENDING]
    if len(pending) == len(rows):
        raise InputError(f"{path}: none of its {len(rows)} stimuli is made yet; wait for `avatar stimuli` "
                         "(or rerun it if it was stopped)")
    return ([StimulusEntry(r["id"], r["mp4"], {c: str(r.get(c) or "") for c in COLUMNS if c != "id"})
             for r in rows if r["status"] == "ok"], pending)


def williams_square(n: int) -> list[list[int]]:
    """A balanced Latin square of n symbols: n rows for even n, 2n (the square and its mirror)
    for odd n. Each symbol takes each position once per row cycle and, for neighbours, each
    ordered pair appears equally often."""
    first, low, high = [0], 1, n - 1
    while len(first) < n:
        first.append(low)
        low += 1
        if len(first) < n:
            first.append(high)
            high -= 1
    rows = [[(symbol + shift) % n for symbol in first] for shift in range(n)]
    return rows if n % 2 == 0 else rows + [row[::-1] for row in rows]


def varying_factors(stimuli: list[StimulusEntry]) -> list[str]:
    """Design columns whose level differs between stimuli."""
    return [c for c in COLUMNS if c != "id" and len({s.levels.get(c, "") for s in stimuli}) > 1]


def _level(stimulus: StimulusEntry, factor: str) -> str:
    return stimulus.id if factor == "id" else stimulus.levels.get(factor, "")


def factor_levels(stimuli: list[StimulusEntry], factor: str) -> list[str]:
    """The levels of a design column (or `id`) in the order they first appear."""
    if factor != "id" and factor not in COLUMNS:
        raise InputError(f"--latin-square {factor}: not a design column ({', '.join(COLUMNS)})")
    levels = list(dict.fromkeys(_level(s, factor) for s in stimuli))
    if len(levels) < 2:
        raise InputError(f"--latin-square {factor}: all stimuli have the same level ({levels[0]!r}); "
                         f"factors that vary: {', '.join(varying_factors(stimuli)) or 'none'}")
    return levels


def _shuffled(items: list[StimulusEntry], rng: np.random.Generator) -> list[StimulusEntry]:
    """A random order; a few draws avoid showing one stimulus twice in a row where possible."""
    order = list(items)
    for _ in range(100):
        order = [items[i] for i in rng.permutation(len(items))]
        if all(a.id != b.id for a, b in zip(order, order[1:])):
            break
    return order


def trial_lists(stimuli: list[StimulusEntry], participants: int, seed: int, factor: str | None = None,
                repeats: int = 1) -> list[list[Trial]]:
    """One list per participant (numbered from 1)."""
    if not (1 <= participants <= MAX_PARTICIPANTS and 1 <= repeats <= MAX_REPEATS):
        raise InputError(f"--participants must lie in 1..{MAX_PARTICIPANTS} and --repeats in 1..{MAX_REPEATS}")
    if seed < 0:
        raise InputError(f"--seed {seed}: must be 0 or more")
    if factor is None:
        groups = [stimuli]
        square = [[0]]
    else:  # which level plays which symbol of the square is drawn once, from the seed
        levels = factor_levels(stimuli, factor)
        levels = [levels[i] for i in np.random.default_rng([seed, 0]).permutation(len(levels))]
        groups = [[s for s in stimuli if _level(s, factor) == level] for level in levels]
        square = williams_square(len(levels))
    lists = []
    for participant in range(1, participants + 1):
        rng = np.random.default_rng([seed, participant])
        trials: list[Trial] = []
        for block, group in enumerate(square[(participant - 1) % len(square)], 1):
            for stimulus in _shuffled(groups[group] * repeats, rng):
                trials.append(Trial(participant, len(trials) + 1, block, stimulus))
        lists.append(trials)
    return lists

