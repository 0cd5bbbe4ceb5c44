"""The restricted unpickler: chumpy and sparse data load as arrays; code never runs."""

import contextlib
import os
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse

from models.errors import InputError
from models.safe_pickle import load_pickle


@contextlib.contextmanager
def fake_chumpy():
    """Install modules `chumpy` and `chumpy.ch` with a class pickled as chumpy.ch.Ch, like
    the official FLAME files; they are removed again so loading cannot import them."""
    package, module = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = x if isinstance(x, Ch) else np.asarray(x, dtype=np.float64)
            self._dirty_vars = {"x"}
            self._itr = None
            self._depends_on_deps = {}
            self._make_dense = False

    Ch.__module__, Ch.__qualname__, Ch.__name__ = "chumpy.ch", "Ch", "Ch"
    module.Ch, package.ch = Ch, module
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = package, module
    try:
        yield Ch
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]


def write(tmp_path, name, payload: bytes):
    path = tmp_path / name
    path.write_bytes(payload)
    return path


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_chumpy_and_sparse_load_as_plain_arrays(tmp_path, protocol):
    rng = np.random.default_rng(protocol)
    template, dirs = rng.normal(size=(4, 3)), rng.normal(size=(4, 3, 2))
    regressor = scipy.sparse.random(5, 4, density=0.5, format="csc", random_state=1)
    with fake_chumpy() as Ch:
        payload = pickle.dumps(
            {
                "v_template": Ch(template),
                "nested": [Ch(dirs), (Ch(Ch(template)), "lbs")],
                "J_regressor": regressor,
                "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]]),
                "flags": {1, 2},
            },
            protocol=protocol,
        )
    assert "chumpy" not in sys.modules
    data = load_pickle(write(tmp_path, "model.pkl", payload))
    assert type(data["v_template"]) is np.ndarray
    np.testing.assert_array_equal(data["v_template"], template)
    np.testing.assert_array_equal(data["nested"][0], dirs)
    np.testing.assert_array_equal(data["nested"][1][0], template)
    assert data["nested"][1][1] == "lbs"
    assert scipy.sparse.issparse(data["J_regressor"])
    np.testing.assert_array_equal(data["J_regressor"].toarray(), regressor.toarray())
    assert data["kintree_table"][0, 0] == 4294967295
    assert data["flags"] == {1, 2}


def test_chumpy_object_without_array_data_is_refused(tmp_path):
    with fake_chumpy() as Ch:
        empty = Ch(0.0)
        del empty.x
        payload = pickle.dumps({"shapedirs": empty}, protocol=2)
    path = write(tmp_path, "model.pkl", payload)
    with pytest.raises(InputError, match="no array data") as raised:
        load_pickle(path)
    assert str(path) in str(raised.value)


class _RunsCommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Evaluates:
    def __reduce__(self):
        return (eval, ("1 + 1",))


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_code_in_a_pickle_is_refused_and_never_runs(tmp_path, protocol):
    marker = tmp_path / "MARKER"
    path = write(tmp_path, "evil.pkl", pickle.dumps({"x": _RunsCommand(f"touch {marker}")}, protocol=protocol))
    with pytest.raises(InputError, match=r"refuses to load (os|posix|nt)\.system") as raised:
        load_pickle(path)
    assert str(path) in str(raised.value)
    assert not marker.exists()
    with pytest.raises(InputError, match=r"(__builtin__|builtins)\.eval"):
        load_pickle(write(tmp_path, "eval.pkl", pickle.dumps(_Evaluates(), protocol=protocol)))


def test_copyreg_reconstructor_cannot_build_arbitrary_objects(tmp_path):
    # copy_reg._reconstructor(set, object, None): a class outside the allow-list.
    outside = b"ccopy_reg\n_reconstructor\n(c__builtin__\nset\nc__builtin__\nobject\nNtR."
    with pytest.raises(InputError, match="refuses"):
        load_pickle(write(tmp_path, "a.pkl", outside))
    # copy_reg._reconstructor(<chumpy stand-in>, set, [1]): a base other than object.
    odd_base = b"ccopy_reg\n_reconstructor\n(cchumpy.ch\nCh\nc__builtin__\nset\n(lp0\nI1\natR."
    with pytest.raises(InputError):
        load_pickle(write(tmp_path, "b.pkl", odd_base))
    # copy_reg.__newobj__(set): also limited to the allow-list.
    newobj = b"ccopy_reg\n__newobj__\n(c__builtin__\nset\ntR."
    with pytest.raises(InputError, match="refuses"):
        load_pickle(write(tmp_path, "c.pkl", newobj))


@pytest.mark.parametrize("payload", [b"", b"\x80\x02}q\x00(X", b"not a pickle at all", b"\x80\x05\x95garbage"])
def test_broken_files_raise_input_error_naming_the_file(tmp_path, payload):
    path = write(tmp_path, "broken.pkl", payload)
    with pytest.raises(InputError) as raised:
        load_pickle(path)
    assert str(path) in str(raised.value)
    assert "\n" not in str(raised.value)


def test_missing_file_raises_input_error(tmp_path):
    with pytest.raises(InputError, match="missing.pkl"):
        load_pickle(tmp_path / "missing.pkl")
