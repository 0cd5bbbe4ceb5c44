"""Making a batch's stimuli on a Ray cluster (`avatar stimuli --ray`): one Ray task per stimulus.

Tasks, not actors: Ray reuses a worker process for the next task of the same function, and the
process keeps its players (avatar, generator) loaded (`batch.keep_worker`), so a pool of actors
would save nothing (benchmarks/README.md §Stimuli on Ray), while a task killed with its worker is
simply run again by Ray (`max_retries`). Each task writes its files into the shared output folder
under temporary names and renames them when complete (`render.make_stimulus`, as locally), and
reports its frames to a small actor the driver polls for the progress bar. Imported only with
`--ray`: Ray is an optional extra.
"""
from __future__ import annotations

import os
import platform
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from common.errors import InputError
from renderer.render import resolve_backend

from .batch import POLL_S, STATE, Finish, Plan, failure, keep_worker, make
from .progress import FrameProgress
from .render import Outputs

RETRIES = 3  # runs of a stimulus whose worker died (killed, out of memory, node lost) before it fails
_REPORT_S = 0.5  # a task reports its frames at most this often
_CANCEL_WAIT_S = 10.0  # after Ctrl-C, how long cancelled tasks get to remove their temporary files
_CONNECT_TIMEOUT_S = 10.0  # how long a cluster's head gets to answer


@ray.remote(num_cpus=0)
class _Frames:
    """Frames rendered so far per slot, written by the tasks, read by the driver."""

    def __init__(self, count: int) -> None:
        self.counts = [0] * count

    def set(self, slot: int, frames: int) -> None:
        self.counts[slot] = frames

    def get(self) -> list[int]:
        return self.counts


class _Reporter:
    """A task's frames to the `_Frames` actor, at most every `_REPORT_S` (each is a message)."""

    def __init__(self, frames: Any) -> None:
        self.frames, self.last = frames, 0.0

    def __call__(self, slot: int, count: int) -> None:
        if time.monotonic() - self.last >= _REPORT_S:
            self.last = time.monotonic()
            self.frames.set.remote(slot, count)


@ray.remote(max_retries=RETRIES)
def _make_stimulus(p: Plan, folder: Path, outputs: Outputs, slot: int, backend: str, threads: int,
                   frames: Any) -> dict[str, Any]:
    keep_worker(backend, threads, _Reporter(frames))
    return make(p, folder, outputs, slot)


@ray.remote(num_cpus=0)
def _missing(paths: list[str]) -> tuple[str, list[str]]:
    """This node's name and which of `paths` it cannot see."""
    return platform.node(), [path for path in paths if not os.path.exists(path)]


def _head(address: str) -> tuple[str, int] | None:
    """(host, port) of a `host:port` or `ray://host:port` address; None for "local" and "auto"."""
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    return (host.strip("[]"), int(port)) if colon and host and port.isdigit() else None


def connect(address: str) -> None:
    """Join the cluster at `address` ("local": start one on this machine), unless connected. A
    head's address is tried first with a plain TCP connection: Ray itself waits minutes on one
    where nothing answers."""
    if ray.is_initialized():
        return
    head = _head(address)
    if head is not None:
        try:
            socket.create_connection(head, timeout=_CONNECT_TIMEOUT_S).close()
        except OSError as err:
            raise InputError(f"--ray {address}: nothing answers there ({err.strerror or err}); start the cluster's "
                             "head with `ray start --head` and give the address it prints") from None
    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise InputError(f"--ray {address}: cannot connect to Ray ({str(err).splitlines()[0]})") from None


def check_shared(folder: Path, pending: list[Plan]) -> None:
    """Every node must see the output folder (a marker file this process writes there) and the
    inputs, or the batch fails here, before any stimulus, rather than row by row."""
    marker = folder / STATE / f".ray-check.{secrets.token_hex(4)}.tmp"
    marker.write_text("")
    paths = [str(marker), *sorted({i["path"] for p in pending for i in p.inputs.values()})]
    try:
        nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
        answers = ray.get([_missing.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
                           .remote(paths) for node in nodes])
    finally:
        marker.unlink(missing_ok=True)
    for host, missing in answers:
        if missing and missing[0] == str(marker):
            raise InputError(f"{folder}: Ray node {host} cannot see this output folder; it must be on a file "
                             "system every node shares (NFS, a cluster file system) under the same path")
        if missing:
            raise InputError(f"{missing[0]}: Ray node {host} cannot see this input file; inputs must be on a "
                             "file system every node shares, under the same path")


@dataclass(frozen=True)
class RayEngine:
    """One task per stimulus, each asking for `cpus` CPUs (its torch and numba threads) and, on a
    cluster with GPUs, `gpus` GPUs (a fraction packs several tasks on one GPU)."""

    cpus: int = 1
    gpus: float = 1.0

    def cluster_gpus(self) -> float:
        return ray.cluster_resources().get("GPU", 0.0)

    def resolve_backend(self, name: str) -> str:
        """"auto" is gsplat on a cluster with GPUs (whether or not this machine has one), else cpu."""
        has_gpus = self.cluster_gpus() > 0
        if name == "auto":
            return "gsplat" if has_gpus else "cpu"
        if name == "gsplat":
            if not has_gpus:
                raise InputError("backend 'gsplat' needs GPUs, and the Ray cluster has none (use --backend cpu)")
            return name
        return resolve_backend(name)

    def run(self, pending: list[Plan], folder: Path, outputs: Outputs, backend: str, finish: Finish,
            bar: FrameProgress) -> None:
        folder = folder.resolve()
        check_shared(folder, pending)
        gpus = self.gpus if backend == "gsplat" else 0
        frames = _Frames.remote(len(pending))
        task = _make_stimulus.options(num_cpus=self.cpus, num_gpus=gpus)
        slots = {task.remote(p, folder, outputs, slot, backend, self.cpus, frames): slot
                 for slot, p in enumerate(pending)}
        waiting = list(slots)
        try:
            while waiting:
                done, waiting = ray.wait(waiting, num_returns=len(waiting), timeout=POLL_S, fetch_local=True)
                for slot, count in enumerate(ray.get(frames.get.remote())):
                    if count:
                        bar.rendered(slot, count)
                for ref in done:
                    finish(slots[ref], _result(ref, pending[slots[ref]]))
        except BaseException:
            _cancel(waiting)
            raise
        finally:
            ray.kill(frames)


def _result(ref: Any, p: Plan) -> dict[str, Any]:
    """A finished task's record; a task Ray gave up on (its worker died `RETRIES` + 1 times) failed."""
    try:
        return ray.get(ref)
    except RayError as err:
        return failure(p, f"{type(err).__name__}: {str(err).strip().splitlines()[0]}")


def _cancel(refs: list[Any]) -> None:
    """Cancel the outstanding tasks: a running one unwinds (removing its temporary files); one
    that does not in `_CANCEL_WAIT_S` is killed with its worker (the batch then removes its
    temporary files)."""
    for ref in refs:
        ray.cancel(ref)
    _, stuck = ray.wait(refs, num_returns=len(refs), timeout=_CANCEL_WAIT_S) if refs else ([], [])
    for ref in stuck:
        ray.cancel(ref, force=True)
    for ref in refs:
        try:
            ray.get(ref, timeout=_CANCEL_WAIT_S)
        except RayError:
            pass
