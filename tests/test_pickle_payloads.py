"""Code planted in any pickle the product reads never runs, through the real commands.

Every path that reads a pickle gets every payload, nested inside an otherwise valid file: a
FLAME .pkl (`avatar info FILE`, `avatar render --avatar DIR --flame FILE`), the three VOCASET
tables (`avatar train-blendshapes --vocaset DIR`) and a checkpoint's training_state.pt
(`avatar train-blendshapes ... --resume`, read by torch.load(weights_only=True)). Each run
must exit with 2 and one line `avatar: error: FILE: ...`, and the marker file a payload would
create must not exist. `test_payloads_are_live` shows each code payload does create its
marker when loaded by plain `pickle.loads`.
"""

import io
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from assets import DEMO_AVATAR
from avatar_app.cli import main
from models.audio.sources import Audio
from models.drivers.checkpoint import load_training_state, save_checkpoint
from models.learning.blendshape_learner import KIND as LEARNER_KIND
from models.learning.datasets import (
    MeshSequence,
    load_vocaset,
    write_florence,
    write_vocaset,
)
from tests.test_flame import model_dict
from tests.test_safe_pickle import P2, array_state, sparse_payload

VOCASET_TABLES = ("subj_seq_to_idx.pkl", "templates.pkl", "raw_audio_fixed.pkl")


def ops(value) -> bytes:
    """The opcodes that push `value` (pickle protocol 2, without PROTO and STOP)."""
    return pickle.dumps(value, protocol=2)[2:-1]


def dict_ops(items: dict[str, bytes]) -> bytes:
    """The opcodes that push a dict whose values are given as opcodes."""
    return b"}(" + b"".join(ops(key) + value for key, value in items.items()) + b"u"


def whole(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


class _Touches:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def evil_npy(marker: Path) -> Path:
    """Where the numpy.load payload expects an .npy whose pickled object would create `marker`."""
    return marker.with_name(marker.name + ".npy")


def call(module: str, name: str, *args) -> bytes:
    """The opcodes of `module.name(*args)`."""
    return P2.glob(module, name) + ops(args) + b"R"


def code_payloads(marker: Path) -> dict[str, bytes]:
    """Opcodes pushing one object whose loading would create `marker`."""
    touch, python = f"touch '{marker}'", f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": call("os", "system", touch),
        "posix.system": call("posix", "system", touch),
        "subprocess.Popen": call("subprocess", "Popen", ["touch", str(marker)]),
        "builtins.exec": call("builtins", "exec", python),
        "__builtin__.eval": call("__builtin__", "eval", f"__import__('os').system({touch!r})"),
        "INST os.system (protocol 0)": b"(" + ops(touch) + b"ios\nsystem\n",
        "OBJ os.system (protocol 0)": b"(" + P2.glob("os", "system") + ops(touch) + b"o",
        "numpy.load of an object .npy": call("numpy", "load", str(evil_npy(marker)), None, True),
        "numpy.testing runstring": call("numpy.testing._private.utils", "runstring", python, {}),
        # a Python function given a __setstate__ by one BUILD, which a second BUILD calls
        "BUILD sets __setstate__": (P2.glob("copyreg", "_reconstructor") + b"}(" + ops("__setstate__")
                                    + P2.glob("os", "system") + b"ub" + ops(touch) + b"b"),
    }


def payloads(marker: Path) -> dict[str, bytes]:
    """Code payloads, plus a scipy sparse state that would write out of bounds on toarray()
    and an array declaring a terabyte."""
    return {
        **code_payloads(marker),
        "csc_matrix indices out of range": sparse_payload("csc_matrix", indices=np.array([0, 1, 10**9]))[2:-1],
        "coo_matrix row out of range": sparse_payload("coo_matrix", row=np.array([0, 1, 10**7]))[2:-1],
        "ndarray of a terabyte": P2.ndarray([], state=array_state((10**12,))),
    }


PAYLOAD_NAMES = list(payloads(Path("MARKER")))


def run_cli(argv, capsys) -> tuple[int, str, str]:
    """`avatar ARGV` in this process: (exit code, stdout, stderr)."""
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_refused(result: tuple[int, str, str], path: Path, marker: Path) -> None:
    code, _, err = result
    assert code == 2, err
    assert err.startswith(f"avatar: error: {path}: ") and err.count("\n") == 1 and err.endswith("\n"), err
    assert not marker.exists()


# ---------------------------------------------------------------------- the files


@pytest.fixture(scope="module")
def flame_items() -> dict[str, bytes]:
    """A valid (small) FLAME model as opcodes per key."""
    return {key: ops(value) for key, value in model_dict().items()}


@pytest.fixture(scope="module")
def avatar_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("avatar") / "avatar"
    shutil.copytree(DEMO_AVATAR, folder)
    return folder


def write_data(root: Path) -> None:
    """A small valid VOCASET folder (20 vertices, 30 fps, with audio) and, beside it, a Florence
    folder with one expression, enough for train-blendshapes to reach its checkpoint."""
    rng = np.random.default_rng(0)
    template = rng.normal(size=(20, 3)).astype(np.float32)
    sequences = [MeshSequence(f"FaceTalk_A/sentence0{k}", template + 0.01 * rng.normal(size=(30, 20, 3)), template,
                              30.0, Audio(rng.uniform(-0.5, 0.5, 16000).astype(np.float32), 16000))
                 for k in range(2)]
    write_vocaset(root, sequences, fps=30.0)
    write_florence(root.parent / "florence", [MeshSequence("id1/Happy", sequences[0].vertices, template, 30.0)], None)


def planted_table(name: str, payload: bytes) -> bytes:
    """A VOCASET table with `payload` where one of its values belongs."""
    if name == "templates.pkl":
        return whole(dict_ops({"FaceTalk_A": payload}))
    return whole(dict_ops({"FaceTalk_A": dict_ops({"sentence01": payload})}))


@pytest.fixture(scope="module")
def vocaset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "vocaset"
    write_data(root)
    return root


def with_data_pkl(data_pkl: bytes) -> bytes:
    """A torch.save archive whose pickle is `data_pkl`."""
    buffer = io.BytesIO()
    torch.save({"step": 0}, buffer)
    source, out = zipfile.ZipFile(buffer), io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for info in source.infolist():
            archive.writestr(info.filename, data_pkl if info.filename.endswith("/data.pkl") else source.read(info))
    return out.getvalue()


@pytest.fixture
def one_thread():
    """Training on a few tiny clips: extra threads only cost here (much, on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------- the paths


def test_payloads_are_live(tmp_path):
    """Plain pickle.loads of each code payload creates its marker: the refusals below are not
    of broken bytes."""
    markers = {name: tmp_path / f"marker-{i}" for i, name in enumerate(code_payloads(tmp_path / "x"))}
    files = []
    for name, marker in markers.items():
        np.save(evil_npy(marker), np.array([_Touches(marker)], dtype=object), allow_pickle=True)
        files.append(tmp_path / f"{marker.name}.pkl")
        files[-1].write_bytes(whole(code_payloads(marker)[name]))
    script = textwrap.dedent("""
        import pickle, sys
        for path in sys.argv[1:]:
            try:
                pickle.loads(open(path, "rb").read())
            except Exception:
                pass
    """)
    subprocess.run([sys.executable, "-c", script, *map(str, files)], check=True, capture_output=True, timeout=60)
    deadline = time.monotonic() + 5
    while not all(m.exists() for m in markers.values()) and time.monotonic() < deadline:
        time.sleep(0.05)  # subprocess.Popen's touch runs on its own
    assert [name for name, marker in markers.items() if not marker.exists()] == []


def test_legitimate_files_pass_the_same_paths(tmp_path, flame_items, vocaset, capsys):
    path = tmp_path / "model.pkl"
    path.write_bytes(whole(dict_ops(flame_items)))
    code, out, err = run_cli(["info", path], capsys)
    assert code == 0 and f"{path}: FLAME model" in out, err
    assert len(load_vocaset(vocaset)) == 2
    checkpoint = tmp_path / "checkpoint"
    save_checkpoint(checkpoint, LEARNER_KIND, {}, torch.nn.Linear(1, 1), {"step": 0})
    (checkpoint / "training_state.pt").write_bytes(with_data_pkl(whole(dict_ops({"step": ops(7)}))))
    assert load_training_state(checkpoint) == {"step": 7}


@pytest.mark.parametrize("name", PAYLOAD_NAMES)
def test_flame_pkl_payloads_never_run(tmp_path, name, flame_items, avatar_dir, capsys):
    marker = tmp_path / "MARKER"
    path = tmp_path / "flame2023.pkl"
    path.write_bytes(whole(dict_ops({**flame_items, "J_regressor": payloads(marker)[name]})))
    assert_refused(run_cli(["info", path], capsys), path, marker)
    argv = ["render", "--avatar", avatar_dir, "--flame", path, "-o", tmp_path / "out.mp4", "-q"]
    assert_refused(run_cli(argv, capsys), path, marker)
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("table", VOCASET_TABLES)
@pytest.mark.parametrize("name", PAYLOAD_NAMES)
def test_vocaset_table_payloads_never_run(tmp_path, name, table, vocaset, capsys):
    marker = tmp_path / "MARKER"
    root = tmp_path / "vocaset"
    shutil.copytree(vocaset, root)
    (root / table).write_bytes(planted_table(table, payloads(marker)[name]))
    argv = ["train-blendshapes", "--vocaset", root, "-o", tmp_path / "out.npz", "--quiet"]
    assert_refused(run_cli(argv, capsys), root / table, marker)


@pytest.mark.parametrize("name", PAYLOAD_NAMES)
def test_training_state_payloads_never_run(tmp_path, name, vocaset, one_thread, capsys):
    marker = tmp_path / "MARKER"
    checkpoint = tmp_path / "checkpoint"
    save_checkpoint(checkpoint, LEARNER_KIND, {}, torch.nn.Linear(1, 1), {"step": 0})
    state = checkpoint / "training_state.pt"
    state.write_bytes(with_data_pkl(whole(dict_ops({"step": ops(0), "optimizer": payloads(marker)[name]}))))
    argv = ["train-blendshapes", "--vocaset", vocaset, "--florence", vocaset.parent / "florence", "--resume",
            "--checkpoint", checkpoint, "-o", tmp_path / "out.npz", "--steps", "0", "--quiet"]
    assert_refused(run_cli(argv, capsys), state, marker)
