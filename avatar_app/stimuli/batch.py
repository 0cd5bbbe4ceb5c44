"""Making a whole design: skip what is already made, make the rest (on an `Engine`: this process,
several local ones, or a Ray cluster, `ray_batch.py`), and keep the manifest up to date as it goes.

Each finished stimulus leaves a record in `<out>/.avatar-stimuli/<id>.json` (written after its
files, atomically): its key (a hash of every resolved parameter, every input file's SHA-256,
the requested outputs, the backend and the software version) and its outputs' hashes. A rerun
skips a stimulus whose key is unchanged and whose files still hash as recorded, and makes the
rest; a killed run leaves only temporary files (removed by the next run), never a partial file
under a final name. The manifest is assembled from the records in design order, written
(atomically) before the first stimulus is made and again each time one finishes: a stimulus not
made yet has the status "pending", so what is done can be checked, or turned into trial lists,
while the batch runs; the last one written by a batch that ran to its end has none.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import functools
import hashlib
import io
import json
import math
import multiprocessing
import platform
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import torch

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

from common.atomic import atomic_write
from common.errors import InputError
from common.files import csv_cell
from models.drivers.checkpoint import CONFIG_FILE, WEIGHTS_FILE
from renderer.render import resolve_backend

from ..avatar import find_point_cloud
from ..interrupts import EXIT_TERMINATED, Terminated
from ..outputs import check_output_folder
from ..threads import usable_cores, use_threads
from .design import COLUMNS
from .progress import FrameProgress
from .render import Outputs, Players, make_stimulus, planned_frames
from .resolve import Stimulus
from .trials import PENDING

STATE = ".avatar-stimuli"
MANIFEST_FORMAT = "talking-head-studio stimulus manifest"
MANIFEST_VERSION = 1
_RESOLVED = ("emotion_mix", "yaw", "pitch", "distance", "width", "height", "background_hex", "driver_used",
             "loudness_target", "loudness_in", "gain_db", "loudness_out", "clipped_samples", "frames", "duration",
             "apex_frame", "frames_sha256")


@functools.cache
def software() -> dict[str, str]:
    """What made the files: this program's version and the libraries that shape the pixels."""
    try:
        version = metadata.version("talking-head-studio")
    except metadata.PackageNotFoundError:
        version = "unknown (not installed)"
    return {"talking-head-studio": version, "torch": torch.__version__, "python": platform.python_version()}


def sha256_file(path: Path) -> str:
    """SHA-256 of a file; of a folder (a motion folder of per-frame files), of its entries' names
    and hashes in name order."""
    digest = hashlib.sha256()
    if path.is_dir():
        for entry in sorted(path.iterdir()):
            digest.update(f"{entry.name}\0{sha256_file(entry)}\n".encode())
        return digest.hexdigest()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class FileHashes:
    """SHA-256 of input files, each read once per run."""

    def __init__(self) -> None:
        self.known: dict[Path, str] = {}

    def of(self, path: Path) -> str:
        path = path.resolve()
        if path not in self.known:
            self.known[path] = sha256_file(path)
        return self.known[path]


def input_files(stimulus: Stimulus) -> dict[str, Path]:
    """Every file a stimulus is made from, by role."""
    source, clip = stimulus.avatar, stimulus.clip
    ply = find_point_cloud(source.avatar)
    files = {"point_cloud": ply, "flame_param": ply.parent / "flame_param.npz", "flame": source.flame,
             "blendshapes": source.blendshapes, "audio": clip.audio, "weights": clip.weights, "motion": clip.motion,
             "camera": stimulus.camera, "arkit_shapes": stimulus.arkit_shapes}
    if source.generator is not None:
        files["generator_config"] = source.generator / CONFIG_FILE
        files["generator_weights"] = source.generator / WEIGHTS_FILE
    return {role: path for role, path in files.items()
            if path is not None and (Path(path).is_file() or role == "motion" and Path(path).is_dir())}


@dataclass
class Plan:
    """A stimulus with its inputs' hashes and its key."""

    stimulus: Stimulus
    inputs: dict[str, dict[str, str]]
    key: str


@dataclass
class BatchResult:
    records: list[dict[str, Any]] = field(default_factory=list)  # design order; failures included
    made: int = 0
    skipped: int = 0
    frames: int = 0  # of the stimuli made in this run
    others: list[str] = field(default_factory=list)  # made in the folder earlier, not in this design

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["status"] != "ok"]


def plan(stimulus: Stimulus, hashes: FileHashes, outputs: Outputs, backend: str) -> Plan:
    inputs = {role: {"path": str(path), "sha256": hashes.of(path)} for role, path in input_files(stimulus).items()}
    identity = {"parameters": stimulus.parameters(), "inputs": {r: v["sha256"] for r, v in inputs.items()},
                "outputs": sorted(outputs.files(stimulus.id, stimulus.exports)), "backend": backend, "software": software()}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return Plan(stimulus, inputs, key)


def _record_path(folder: Path, stimulus_id: str) -> Path:
    return folder / STATE / f"{stimulus_id}.json"


def _finished(folder: Path, p: Plan) -> dict[str, Any] | None:
    """The stimulus' record if its key matches and its files are there as recorded."""
    try:
        record = json.loads(_record_path(folder, p.stimulus.id).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or record.get("key") != p.key:
        return None
    for output in record.get("outputs", {}).values():
        path = folder / output["file"]
        if not path.is_file() or sha256_file(path) != output["sha256"]:
            return None
    return record


@contextlib.contextmanager
def _only_batch_in(folder: Path) -> Iterator[None]:
    """One batch at a time per folder: a second would remove the first's temporary files."""
    with open(folder / STATE / "lock", "w") as handle:
        if fcntl is not None:  # POSIX; elsewhere the folder is not guarded
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise InputError(f"{folder}: another `avatar stimuli` is writing there; wait for it to end "
                                 "or choose another folder") from None
        yield


def _remove_temporaries(folder: Path) -> None:
    """Temporary files a killed run left behind (ours: hidden, `.partial` or `.tmp`)."""
    for directory in (folder, folder / STATE):
        for path in directory.glob(".*"):
            if path.is_file() and (".partial" in path.name or path.name.endswith(".tmp")):
                path.unlink()


# ---- the work of one process ---------------------------------------------------------------
_players: Players | None = None
_busy = False  # a worker process is making a stimulus
_rendered: Callable[[int, int], None] | None = None  # (slot, frames so far) of the stimulus being made


def _start_worker(backend: str, threads: int, rendered: Callable[[int, int], None]) -> None:
    global _players, _rendered
    if threads:
        use_threads(threads)
    _players, _rendered = Players(backend), rendered


def _start_process(backend: str, threads: int, frames: Any) -> None:
    """A worker process: SIGTERM (sent by the driver when the batch is stopped) unwinds the
    stimulus being made, removing its temporary files, or ends an idle worker quietly. It
    reports its frames in `frames`, an array shared with the driver, at the stimulus' slot."""
    signal.signal(signal.SIGTERM, _stop_worker)
    _start_worker(backend, threads, frames.__setitem__)


def keep_worker(backend: str, threads: int, rendered: Callable[[int, int], None]) -> None:
    """A process that makes stimuli one call after another (a Ray worker): its players stay
    loaded from one stimulus to the next, as a local worker process's do."""
    global _rendered
    if _players is None or _players.backend != backend:
        _start_worker(backend, threads, rendered)
    else:
        use_threads(threads)
        _rendered = rendered


def _stop_worker(_signum: int, _frame: object) -> None:
    if _busy:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()
    sys.exit(EXIT_TERMINATED)


def make(p: Plan, folder: Path, outputs: Outputs, slot: int) -> dict[str, Any]:
    """Make one stimulus, reporting its frames as they render; a failure is returned as a
    reason, not raised."""
    global _busy
    stimulus = p.stimulus
    try:
        _busy = True
        facts = make_stimulus(stimulus, folder, outputs, _players, lambda frames: _rendered(slot, frames))
    except InputError as err:
        return failure(p, str(err))
    except Exception as err:  # noqa: BLE001 - a failing row must not stop the others
        return failure(p, f"{type(err).__name__}: {err}")
    finally:
        _busy = False
    files = outputs.files(stimulus.id, stimulus.exports)
    return {"id": stimulus.id, "status": "ok", **facts,
            "outputs": {kind: {"file": name, "sha256": sha256_file(folder / name)} for kind, name in files.items()},
            "rendered_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "host": platform.node()}


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _full_record(p: Plan, made: dict[str, Any], backend: str) -> dict[str, Any]:
    made = {k: _finite(v) for k, v in made.items()}
    return {"id": p.stimulus.id, "status": made.pop("status"), "error": made.pop("error", None), "key": p.key,
            "levels": p.stimulus.levels, "parameters": p.stimulus.parameters(), "inputs": p.inputs,
            "backend": backend, "software": software(), **made}


def check_study_folder(folder: Path) -> Path:
    """A folder a batch may write into: new, empty, or made by an earlier batch."""
    return check_output_folder(folder, is_ours=lambda path: (path / STATE).is_dir(), what="stimuli")


Finish = Callable[[int, dict[str, Any]], None]  # (slot, what `make` returned) of a stimulus that ended


class Engine(Protocol):
    """Where the stimuli are made: local processes (`LocalEngine`) or a Ray cluster (`ray_batch`)."""

    def resolve_backend(self, name: str) -> str:
        """The backend `name` ("auto" included) on the machines that will render."""

    def run(self, pending: list[Plan], folder: Path, outputs: Outputs, backend: str, finish: Finish,
            bar: FrameProgress) -> None:
        """Make `pending`, calling `finish` in this process as each one ends and reporting frames to `bar`."""


@dataclass(frozen=True)
class LocalEngine:
    """This process, or `workers` local processes."""

    workers: int = 1

    def resolve_backend(self, name: str) -> str:
        return resolve_backend(name)

    def run(self, pending: list[Plan], folder: Path, outputs: Outputs, backend: str, finish: Finish,
            bar: FrameProgress) -> None:
        if self.workers <= 1 or len(pending) <= 1:
            _start_worker(backend, 0, bar.rendered)
            for slot, p in enumerate(pending):
                finish(slot, make(p, folder, outputs, slot))
        else:
            _in_processes(pending, folder, outputs, backend, self.workers, finish, bar)


def failure(p: Plan, reason: str) -> dict[str, Any]:
    """What `make` returns for a stimulus that failed."""
    return {"id": p.stimulus.id, "status": "failed", "error": reason}


def run_batch(stimuli: list[Stimulus], folder: Path, outputs: Outputs, backend: str = "auto", workers: int = 1,
              progress: bool = True, design: Path | None = None, engine: Engine | None = None) -> BatchResult:
    """Make every stimulus not already made in `folder` (on `engine`, else on `workers` local
    processes), keeping the manifest there (naming the `design` file and its hash) up to date as
    each one finishes."""
    engine = engine or LocalEngine(workers)
    check_study_folder(folder)
    try:
        (folder / STATE).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{folder}: cannot write there ({err.strerror or err})") from None
    with _only_batch_in(folder):
        _remove_temporaries(folder)
        backend = engine.resolve_backend(backend)
        hashes = FileHashes()
        plans = [plan(s, hashes, outputs, backend) for s in stimuli]
        records = {p.stimulus.id: r for p in plans if (r := _finished(folder, p)) is not None}
        pending = [p for p in plans if p.stimulus.id not in records]
        ids = {s.id for s in stimuli}
        result = BatchResult(skipped=len(records),
                             others=sorted({p.stem for p in (folder / STATE).glob("*.json")} - ids))
        if progress and records:
            print(f"{len(records)} of {len(plans)} stimuli are already made and unchanged: skipped")
        about = {"path": str(design), "sha256": sha256_file(design)} if design is not None else None
        manifest = _Manifest(folder, plans, records, backend, about)
        manifest.flush()
        try:
            _make_all(pending, folder, outputs, backend, engine, progress, records, result, manifest.changed)
            _remove_temporaries(folder)  # of a worker killed mid-stimulus whose stimulus was made again
            manifest.flush()
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the next run resumes from what is finished
            _remove_temporaries(folder)
            manifest.flush()
            made = sum(r["status"] == "ok" for r in records.values())
            print(f"stopped: {made} of {len(plans)} stimuli are made; {folder / 'manifest.json'} marks those "
                  f"not made yet {PENDING!r}; the same command makes the rest", file=sys.stderr)
            raise
        result.records = [records[s.id] for s in stimuli]
    return result


_MANIFEST_SHARE = 0.05  # at most this share of a batch's time goes to rewriting a (long) manifest


class _Manifest:
    """The manifest of a running batch: the finished stimuli's records, and the others as
    pending. Rewritten each time one finishes; a design so long that rewriting it takes a
    noticeable share of the batch's time is rewritten less often, and always at its end."""

    def __init__(self, folder: Path, plans: list[Plan], records: dict[str, dict[str, Any]], backend: str,
                 design: dict[str, str] | None) -> None:
        self.folder, self.records, self.backend, self.design = folder, records, backend, design
        self.pending = {p.stimulus.id: _full_record(p, {"status": PENDING}, backend) for p in plans}
        self.stale = True  # records changed since the last write
        self.next_write = 0.0

    def changed(self) -> None:
        """A stimulus finished: write the manifest, unless it was written too recently."""
        self.stale = True
        if time.monotonic() >= self.next_write:
            self.flush()

    def flush(self) -> None:
        """Write the manifest if anything changed since it was last written."""
        if not self.stale:
            return
        started = time.monotonic()
        write_manifest(self.folder, [self.records.get(i) or self.pending[i] for i in self.pending], self.backend,
                       self.design)
        self.stale = False
        self.next_write = time.monotonic() + (time.monotonic() - started) / _MANIFEST_SHARE


def _make_all(pending: list[Plan], folder: Path, outputs: Outputs, backend: str, engine: Engine, progress: bool,
              records: dict[str, dict[str, Any]], result: BatchResult, publish: Callable[[], None]) -> None:
    """Make the pending stimuli on `engine`, recording each as
    it finishes (a success also on disk) and publishing the manifest, with a progress bar in
    frames that counts failures."""
    bar = FrameProgress([planned_frames(p.stimulus) for p in pending], progress)

    def finish(slot: int, made: dict[str, Any]) -> None:
        p = pending[slot]
        record = records[p.stimulus.id] = _full_record(p, made, backend)
        if record["status"] == "ok":
            result.made += 1
            result.frames += record["frames"]
            text = json.dumps(record, indent=1) + "\n"
            atomic_write(_record_path(folder, p.stimulus.id), lambda h: h.write(text.encode("utf-8")))
            bar.ended_with(slot, record["frames"])
        else:
            bar.write(f"{p.stimulus.id} (row {p.stimulus.row}): failed: {record['error']}")
            bar.ended_with(slot, None)
        publish()

    try:
        engine.run(pending, folder, outputs, backend, finish, bar)
    finally:
        bar.close()


POLL_S = 0.2  # how often the driver reads the workers' frame counts


def _in_processes(pending: list[Plan], folder: Path, outputs: Outputs, backend: str, workers: int,
                  finish: Finish, bar: FrameProgress) -> None:
    """Several local processes (spawned: a forked torch can hang), the cores shared out; they
    write the frames each stimulus has rendered into a shared array, which this process reads
    for the progress bar while it waits."""
    threads = max(1, usable_cores() // workers)
    context = multiprocessing.get_context("spawn")
    frames = context.RawArray("q", len(pending))
    pool = concurrent.futures.ProcessPoolExecutor(workers, context, initializer=_start_process,
                                                  initargs=(backend, threads, frames))
    try:
        futures = {pool.submit(make, p, folder, outputs, slot): slot for slot, p in enumerate(pending)}
        waiting = set(futures)
        while waiting:
            done, waiting = concurrent.futures.wait(waiting, POLL_S, concurrent.futures.FIRST_COMPLETED)
            for slot, count in enumerate(frames[:]):
                if count:
                    bar.rendered(slot, count)
            for future in done:
                finish(futures[future], future.result())
    except BaseException:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()  # SIGTERM: each worker removes its temporaries and ends
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()


def _csv_row(record: dict[str, Any]) -> dict[str, Any]:
    parameters = record.get("parameters", {})
    row = {"id": record["id"], "status": record["status"], "error": record.get("error") or ""}
    outputs = record.get("outputs", {})
    for kind in ("mp4", "png", "weights_csv"):
        row[kind] = outputs.get(kind, {}).get("file", "")
    row.update({c: record.get("levels", {}).get(c, "") for c in COLUMNS if c != "id"})
    resolved = {**parameters, **record, "background_hex": parameters.get("background"),
                "driver_used": parameters.get("driver")}
    row.update({c: "" if resolved.get(c) is None else resolved[c] for c in _RESOLVED})
    for kind in ("mp4", "png", "weights_csv"):
        row[f"{kind}_sha256"] = outputs.get(kind, {}).get("sha256", "")
    row["exports_sha256"] = ";".join(f"{v['file']}={v['sha256']}" for kind, v in outputs.items()
                                     if kind.startswith("export_"))
    row["inputs_sha256"] = ";".join(f"{role}={v['sha256']}" for role, v in record.get("inputs", {}).items())
    row["software"] = ";".join(f"{k}={v}" for k, v in record.get("software", {}).items())
    row["backend"] = record.get("backend", "")
    row["rendered_at"] = record.get("rendered_at", "")
    row["host"] = record.get("host", "")
    return row


def write_manifest(folder: Path, records: list[dict[str, Any]], backend: str,
                   design: dict[str, str] | None = None) -> None:
    """manifest.json (everything, nested) and manifest.csv (one flat row per stimulus)."""
    document = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "software": software(),
                "backend": backend, "design": design, "stimuli": [{k: v for k, v in r.items() if k != "key"} for r in records]}
    text = json.dumps(document, indent=1) + "\n"
    atomic_write(folder / "manifest.json", lambda h: h.write(text.encode("utf-8")))
    rows = [_csv_row(r) for r in records]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["id"], lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: csv_cell(value) for key, value in row.items()} for row in rows)
    atomic_write(folder / "manifest.csv", lambda h: h.write(out.getvalue().encode("utf-8")))
