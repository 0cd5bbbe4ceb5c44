"""The restricted unpickler: chumpy, numpy and scipy sparse data load as checked arrays; code
never runs; crafted states, sizes and nesting are refused in one line, never with a crash.

Python 2 era files (official FLAME models, VOCASET) are rebuilt opcode by opcode with `Py2`,
the way cPickle, old numpy and old scipy wrote them; crash-prone files are loaded in a
subprocess, so a regression fails a test instead of killing pytest.
"""

import ast
import contextlib
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import types
import warnings

import numpy as np
import pytest
import scipy.sparse

from common.errors import InputError
from common.limits import MAX_NESTING
from models.rig.safe_pickle import load_pickle

SPARSE_KINDS = ("csc_matrix", "csr_matrix", "coo_matrix", "csc_array", "csr_array", "coo_array")


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


class Py2:
    """Pickle opcodes as Python 2's cPickle wrote them, at protocol 0 (text) or 2 (binary).
    Each method returns the opcodes that push one object; no memo is used, so fragments
    compose by concatenation, and `pickle` wraps a fragment into a whole pickle."""

    def __init__(self, protocol: int):
        self.protocol = protocol

    def pickle(self, body: bytes) -> bytes:
        return (b"\x80\x02" if self.protocol == 2 else b"") + body + b"."

    def str(self, data) -> bytes:
        """A Python 2 str (bytes); Python 3 reads it as latin-1 text."""
        data = data.encode("latin1") if isinstance(data, str) else data
        if self.protocol == 0:
            return b"S" + repr(data)[1:].encode("ascii") + b"\n"
        if len(data) < 256:
            return b"U" + bytes([len(data)]) + data
        return b"T" + struct.pack("<i", len(data)) + data

    def int(self, n: int) -> bytes:
        if self.protocol == 0:
            return b"I%d\n" % n
        if 0 <= n < 256:
            return b"K" + bytes([n])
        if 0 <= n < 65536:
            return b"M" + struct.pack("<H", n)
        if -(2**31) <= n < 2**31:
            return b"J" + struct.pack("<i", n)
        raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
        return b"\x8a" + bytes([len(raw)]) + raw

    def bool(self, value: bool) -> bytes:
        if self.protocol == 0:
            return b"I01\n" if value else b"I00\n"
        return b"\x88" if value else b"\x89"

    none = b"N"

    def tuple(self, *items: bytes) -> bytes:
        if self.protocol == 2 and 1 <= len(items) <= 3:
            return b"".join(items) + bytes([0x84 + len(items)])  # TUPLE1..3
        return b"(" + b"".join(items) + b"t"

    def list(self, *items: bytes) -> bytes:
        if self.protocol == 0:
            return b"(" + b"".join(items) + b"l"
        return b"]" + (b"(" + b"".join(items) + b"e" if items else b"")

    def dict(self, pairs: dict) -> bytes:
        """`pairs` maps str keys (or opcode bytes) to opcode bytes."""
        items = [(self.str(k) if isinstance(k, str) else k) + v for k, v in pairs.items()]
        if self.protocol == 0:
            return b"(d" + b"".join(item + b"s" for item in items)
        return b"}" + (b"(" + b"".join(items) + b"u" if items else b"")

    @staticmethod
    def glob(module: str, name: str) -> bytes:
        return b"c" + module.encode() + b"\n" + name.encode() + b"\n"

    def call(self, function: bytes, *args: bytes) -> bytes:
        return function + self.tuple(*args) + b"R"

    @staticmethod
    def build(obj: bytes, state: bytes) -> bytes:
        return obj + state + b"b"

    def instance(self, module: str, name: str) -> bytes:
        """An empty instance of a new-style class, as Python 2 pickled one before its BUILD."""
        if self.protocol == 2:
            return self.glob(module, name) + b")\x81"  # NEWOBJ (copy_reg.__newobj__)
        return self.call(self.glob("copy_reg", "_reconstructor"), self.glob(module, name),
                         self.glob("__builtin__", "object"), self.none)

    def dtype(self, dtype: np.dtype) -> bytes:
        dtype = np.dtype(dtype)
        made = self.call(self.glob("numpy", "dtype"), self.str(dtype.str[1:]), self.int(0), self.int(1))
        size = dtype.itemsize if dtype.kind in "SU" else -1
        align = {"S": 1, "U": 4}.get(dtype.kind, -1)
        return self.build(made, self.tuple(self.int(3), self.str(dtype.str[0]), self.none, self.none,
                                           self.none, self.int(size), self.int(align), self.int(0)))

    def ndarray(self, array, state=None) -> bytes:
        """numpy's own layout: _reconstruct(ndarray, (0,), 'b') + BUILD (1, shape, dtype, fortran, data)."""
        array = np.asarray(array)
        made = self.call(self.glob("numpy.core.multiarray", "_reconstruct"), self.glob("numpy", "ndarray"),
                         self.tuple(self.int(0)), self.str(b"b"))
        fortran = array.flags.f_contiguous and not array.flags.c_contiguous
        state = state or self.tuple(self.int(1), self.tuple(*(self.int(n) for n in array.shape)),
                                    self.dtype(array.dtype), self.bool(fortran),
                                    self.str(array.tobytes(order="F" if fortran else "C")))
        return self.build(made, state)

    def value(self, value) -> bytes:
        """Plain values as Python 2 would pickle them (str keys, ints, arrays, lists, dicts)."""
        if isinstance(value, np.ndarray):
            return self.ndarray(value)
        if isinstance(value, bool):
            return self.bool(value)
        if isinstance(value, int):
            return self.int(value)
        if isinstance(value, (str, bytes)):
            return self.str(value)
        if value is None:
            return self.none
        if isinstance(value, dict):
            return self.dict({self.value(k): self.value(v) for k, v in value.items()})
        if isinstance(value, (list, tuple)):
            return (self.list if isinstance(value, list) else self.tuple)(*(self.value(v) for v in value))
        if isinstance(value, set):
            return self.call(self.glob("__builtin__", "set"), self.list(*(self.value(v) for v in value)))
        raise TypeError(type(value))

    def chumpy(self, x: bytes) -> bytes:
        """A chumpy.ch.Ch as FLAME files hold it: its __dict__ minus _parents and _cache."""
        state = self.dict({"x": x, "_dirty_vars": self.value({"x"}), "_itr": self.none,
                           "_depends_on_deps": self.dict({}), "_make_dense": self.bool(False),
                           "_make_sparse": self.bool(False)})
        return self.build(self.instance("chumpy.ch", "Ch"), state)

    def sparse(self, module: str, kind: str, state: dict) -> bytes:
        return self.build(self.instance(module, kind), self.dict({k: self.value(v) for k, v in state.items()}))


def csc_state(matrix: scipy.sparse.csc_matrix, layout: str) -> dict:
    """The __dict__ a scipy of that era pickled for a csc_matrix (from scipy's git history:
    `format` and `maxprint` were set in spmatrix.__init__ up to 0.18, only `maxprint` since;
    has_sorted_indices was a name-mangled private attribute up to 0.13; the shape property
    stores `_shape` since 0.6, and a `shape` key is accepted too)."""
    state = {"_shape": matrix.shape, "maxprint": 50, "indices": matrix.indices.astype(np.int32),
             "indptr": matrix.indptr.astype(np.int32), "data": matrix.data}
    if layout == "scipy 0.7-0.13":
        state.update(format="csc", _cs_matrix__has_sorted_indices=True)
    elif layout == "scipy 0.14-0.18":
        state.update(format="csc", _has_sorted_indices=True)
    elif layout == "shape key":
        state["shape"] = state.pop("_shape")
        state.update(format="csc", nnz=matrix.nnz, nzmax=matrix.nnz, dtype=None)
    return state


def write(tmp_path, name, payload: bytes):
    path = tmp_path / name
    path.write_bytes(payload)
    return path


def refused(path, match: str | None = None) -> str:
    """load_pickle's one-line message for a file it must refuse."""
    with pytest.raises(InputError, match=match) as raised:
        load_pickle(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    return message


def load_in_subprocess(paths) -> list[str]:
    """Load each file in a fresh interpreter; a crash there fails the calling test, and the
    last line printed names the file that crashed it."""
    code = textwrap.dedent("""
        import sys
        from common.errors import InputError
        from models.rig.safe_pickle import load_pickle
        for path in sys.argv[1:]:
            print("LOADING", path, flush=True)
            try:
                load_pickle(path)
                print("LOADED", flush=True)
            except InputError as err:
                print("REFUSED", ascii(str(err)), flush=True)
    """)
    done = subprocess.run([sys.executable, "-c", code, *map(str, paths)], capture_output=True, text=True,
                          timeout=120, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 0, f"crashed ({done.returncode}): {done.stdout[-500:]} {done.stderr[-2000:]}"
    results = []
    for line in done.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word != "LOADING":
            results.append(f"REFUSED {ast.literal_eval(rest)}" if word == "REFUSED" else word)
    return results


P2 = Py2(2)
CHUMPY = P2.glob("chumpy.ch", "Ch")
ENCODE = P2.glob("_codecs", "encode")


# ---------------------------------------------------------------------- legitimate files


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
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
                "fortran": np.asfortranarray(dirs[..., 0]),
                "transposed": dirs.transpose(2, 0, 1),
                "big_endian": np.arange(3, dtype=">i4"),
                "empty": np.zeros((0, 3)),
                "scalars": [np.float32(1.5), np.int64(-3), np.bool_(True)],
                "flags": {1, 2},
                "raw": b"\x00\xff",
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
    assert type(data["J_regressor"]) is scipy.sparse.csc_matrix
    np.testing.assert_array_equal(data["J_regressor"].toarray(), regressor.toarray())
    assert data["kintree_table"][0, 0] == 4294967295
    np.testing.assert_array_equal(data["fortran"], dirs[..., 0])
    np.testing.assert_array_equal(data["transposed"], dirs.transpose(2, 0, 1))
    assert data["big_endian"].dtype == np.dtype(">i4") and data["big_endian"].tolist() == [0, 1, 2]
    assert data["empty"].shape == (0, 3) and data["empty"].flags.writeable
    assert data["scalars"] == [1.5, -3, True] and type(data["scalars"][0]) is np.float32
    assert data["flags"] == {1, 2} and data["raw"] == b"\x00\xff"


@pytest.mark.parametrize("kind", SPARSE_KINDS)
@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_sparse_matrices_and_arrays_pickled_by_this_scipy_load(tmp_path, kind, protocol):
    dense = np.array([[0, 2.5, 0], [1, 0, 0], [0, 0, 0], [0, -4, 7]])
    matrix = getattr(scipy.sparse, kind)(dense)
    loaded = load_pickle(write(tmp_path, "m.pkl", pickle.dumps({"m": matrix}, protocol=protocol)))["m"]
    assert type(loaded) is type(matrix)
    np.testing.assert_array_equal(loaded.toarray(), dense)


@pytest.mark.parametrize("layout", ["scipy 0.7-0.13", "scipy 0.14-0.18", "scipy 0.19+", "shape key"])
@pytest.mark.parametrize("protocol", [0, 2])
def test_python2_flame_file_with_old_scipy_csc_loads(tmp_path, protocol, layout):
    """An official FLAME file as Python 2 wrote it: chumpy arrays, a csc J_regressor from
    scipy.sparse.csc, str keys, numpy's (1, shape, dtype, fortran, str) array state."""
    py2 = Py2(protocol)
    rng = np.random.default_rng(0)
    template = rng.normal(size=(6, 3))
    regressor = scipy.sparse.csc_matrix(rng.random((5, 6)) * (rng.random((5, 6)) > 0.5))
    regressor.sort_indices()
    body = py2.dict({
        "v_template": py2.chumpy(py2.ndarray(template)),
        "J_regressor": py2.sparse("scipy.sparse.csc", "csc_matrix", csc_state(regressor, layout)),
        "f": py2.ndarray(np.arange(18, dtype=np.uint32).reshape(6, 3)),
        "kintree_table": py2.ndarray(np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64)),
        "bs_style": py2.str("lbs"),
    })
    payload = py2.pickle(body)
    data = load_pickle(write(tmp_path, "generic_model.pkl", payload))
    np.testing.assert_array_equal(data["v_template"], template)
    assert type(data["J_regressor"]) is scipy.sparse.csc_matrix
    np.testing.assert_array_equal(data["J_regressor"].toarray(), regressor.toarray())
    assert data["f"].dtype == np.uint32 and data["kintree_table"][0, 0] == 4294967295
    assert data["bs_style"] == "lbs"
    if layout == "shape key":
        return  # scipy ≤ 0.5 kept `shape` itself; today's scipy cannot read that
    # scipy itself builds the same matrix from these bytes (its own, trusting, unpickling)
    with fake_chumpy(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        trusted = pickle.loads(payload, encoding="latin1")
    np.testing.assert_array_equal(trusted["J_regressor"].toarray(), data["J_regressor"].toarray())


@pytest.mark.parametrize("protocol", [0, 2])
def test_python2_coo_matrix_and_plain_tables_load(tmp_path, protocol):
    py2 = Py2(protocol)
    coo = scipy.sparse.coo_matrix(np.array([[0, 1.0], [2, 0], [0, 3]]))
    state = {"_shape": coo.shape, "maxprint": 50, "format": "coo", "row": coo.row, "col": coo.col,
             "data": coo.data, "has_canonical_format": True}
    table = {"FaceTalk_A": {"sentence01": {0: 5, 1: 6}}, "rate": 22000, "audio": np.array([0, -32768], np.int16)}
    body = py2.dict({"coo": py2.sparse("scipy.sparse.coo", "coo_matrix", state), "table": py2.value(table)})
    data = load_pickle(write(tmp_path, "t.pkl", py2.pickle(body)))
    np.testing.assert_array_equal(data["coo"].toarray(), coo.toarray())
    assert data["table"]["FaceTalk_A"] == {"sentence01": {0: 5, 1: 6}} and data["table"]["rate"] == 22000
    assert data["table"]["audio"].tolist() == [0, -32768]


def test_other_ways_picklers_spell_objects_load(tmp_path):
    """copyreg.__newobj__ called explicitly, the protocol-0 INST opcode, and the module that
    defined the sparse array classes in scipy 1.8-1.10."""
    x = P2.ndarray(np.arange(3.0))
    newobj = P2.build(P2.call(P2.glob("copy_reg", "__newobj__"), CHUMPY), P2.dict({"x": x}))
    inst = P2.build(b"(ichumpy.ch\nCh\n", P2.dict({"x": x}))
    array = pickle.dumps(scipy.sparse.csr_array(np.eye(2)), protocol=2)
    array = array.replace(b"scipy.sparse._csr\ncsr_array", b"scipy.sparse._arrays\ncsr_array")
    assert b"_arrays" in array
    data = load_pickle(write(tmp_path, "ways.pkl", P2.pickle(P2.list(newobj, inst, array[2:-1]))))
    assert [a.tolist() for a in data[:2]] == [[0, 1, 2]] * 2
    assert type(data[2]) is scipy.sparse.csr_array and data[2].toarray().tolist() == [[1, 0], [0, 1]]


# ---------------------------------------------------------------------- code never runs


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
    refused(path, r"refuses to load (os|posix|nt)\.system")
    assert not marker.exists()
    refused(write(tmp_path, "eval.pkl", pickle.dumps(_Evaluates(), protocol=protocol)), r"(__builtin__|builtins)\.eval")


def test_chumpy_object_without_array_data_is_refused(tmp_path):
    with fake_chumpy() as Ch:
        empty = Ch(0.0)
        del empty.x
        payload = pickle.dumps({"shapedirs": empty}, protocol=2)
    refused(write(tmp_path, "model.pkl", payload), "chumpy.ch.Ch object holds no array data")


@pytest.mark.parametrize("body, match", [
    # copyreg may only make chumpy and sparse stand-ins, on the base object
    (P2.call(P2.glob("copy_reg", "_reconstructor"), P2.glob("__builtin__", "set"), P2.glob("__builtin__", "object"),
             P2.none), "copyreg to build something other"),
    (P2.call(P2.glob("copy_reg", "_reconstructor"), CHUMPY, P2.glob("__builtin__", "set"), P2.list(P2.int(1))),
     "a base other than object"),
    (P2.call(P2.glob("copy_reg", "__newobj__"), P2.glob("numpy", "dtype")), "copyreg to build something other"),
    # numpy.ndarray, builtins.object are only ever arguments; frozenset, slice are not allowed
    (P2.call(P2.glob("numpy", "ndarray"), P2.tuple(P2.int(10**6))), "calls numpy.ndarray"),
    (P2.glob("numpy", "ndarray") + b")\x81", "NEWOBJ class argument"),
    (P2.call(P2.glob("__builtin__", "object")), "calls builtins.object"),
    (P2.call(P2.glob("__builtin__", "frozenset"), P2.list()), "refuses to load __builtin__.frozenset"),
    (P2.call(P2.glob("__builtin__", "slice"), P2.int(1)), "refuses to load __builtin__.slice"),
    (P2.call(P2.glob("numpy.core.multiarray", "_reconstruct"), P2.glob("numpy.matrixlib.defmatrix", "matrix"),
             P2.tuple(P2.int(0)), P2.str("b")), "refuses to load numpy.matrixlib.defmatrix.matrix"),
    (P2.call(P2.glob("numpy.core.multiarray", "_reconstruct"), CHUMPY, P2.tuple(P2.int(0)), P2.str("b")),
     "other than a plain ndarray"),
    # the wrappers check their arguments
    (P2.call(P2.glob("__builtin__", "bytes"), P2.int(10**12)), "bytes\\(\\) with arguments"),
    (P2.call(ENCODE, P2.str("x"), P2.str("utf-16")), "_codecs.encode other than"),
    (P2.call(P2.glob("__builtin__", "set"), P2.list(P2.tuple(P2.int(1), P2.int(2)))), "set of values other"),
    # BUILD cannot set attributes of a callable (as it could a function's __dict__ or
    # __defaults__), nor a second state or a __class__ on a stand-in
    (P2.build(ENCODE, P2.dict({"__setstate__": P2.glob("__builtin__", "set")})), "AttributeError"),
    (P2.build(ENCODE, P2.tuple(P2.none, P2.dict({"_function": P2.glob("__builtin__", "set")}))),
     "no settable attributes"),
    (P2.build(P2.glob("numpy", "ndarray"), P2.tuple(P2.none, P2.dict({"__class__": CHUMPY}))), "no settable"),
    (P2.build(P2.build(CHUMPY + b")\x81", P2.dict({"x": P2.int(1)})), P2.dict({"x": P2.int(2)})), "state twice"),
    (P2.build(CHUMPY, P2.dict({"x": P2.int(1)})), "missing 1 required positional argument"),
    (P2.build(CHUMPY + b")\x81", P2.tuple(P2.none, P2.dict({"__class__": P2.glob("scipy.sparse", "csc_matrix")}))),
     "holds no array data"),
    # things that are not data
    (P2.dict({"x": CHUMPY}), "holds chumpy.ch.Ch itself"),
    (P2.list(ENCODE), "holds _codecs.encode itself"),
    (b"\x95" + struct.pack("<Q", 1 << 40), "frame of"),
    (P2.str("x") + b"Q", "persistent"),
])
def test_allowed_globals_cannot_be_abused(tmp_path, body, match):
    refused(write(tmp_path, "abuse.pkl", P2.pickle(body)), match)


# ---------------------------------------------------------------------- crafted states and sizes


def sparse_payload(kind: str, **changes) -> bytes:
    """A pickle of a scipy sparse matrix whose pickled attributes are overwritten by `changes`."""
    matrix = getattr(scipy.sparse, kind)(np.array([[1.0, 0, 2], [0, 3, 0]]))
    state = {"_shape": matrix.shape, "maxprint": 50, "data": matrix.data}
    if kind.startswith("coo"):
        state.update(row=matrix.row, col=matrix.col)
    else:
        state.update(indices=matrix.indices, indptr=matrix.indptr)
    state.update(changes)
    state = {k: v for k, v in state.items() if v is not None}
    return P2.pickle(P2.sparse("scipy.sparse._" + kind[:3], kind, state))


MALICIOUS_SPARSE = {
    "csc index far out of range": sparse_payload("csc_matrix", indices=np.array([0, 1, 10**9], np.int32)),
    "csc negative index": sparse_payload("csc_matrix", indices=np.array([0, -5, 0], np.int64)),
    "csr huge uint index": sparse_payload("csr_matrix", indices=np.array([0, 2**63, 1], np.uint64)),
    "csc indptr falls": sparse_payload("csc_matrix", indptr=np.array([0, 3, 1, 3], np.int32)),
    "csc indptr too short": sparse_payload("csc_matrix", indptr=np.array([0, 3], np.int32)),
    "csc indptr past data": sparse_payload("csc_matrix", indptr=np.array([0, 1, 2, 9], np.int32)),
    "csc indptr not from 0": sparse_payload("csc_matrix", indptr=np.array([1, 2, 3, 3], np.int32)),
    "csr fewer indices than data": sparse_payload("csr_array", indices=np.array([0], np.int32)),
    "csc float indices": sparse_payload("csc_matrix", indices=np.array([0.0, 1, 0])),
    "csc 2-d indices": sparse_payload("csc_matrix", indices=np.zeros((3, 1), np.int32)),
    "csc text data": sparse_payload("csc_matrix", data=np.array(["a", "b", "c"])),
    "csc no indices": sparse_payload("csc_matrix", indices=None),
    "csc shape of 3": sparse_payload("csc_matrix", _shape=(2, 3, 1)),
    "csc negative shape": sparse_payload("csc_matrix", _shape=(-2, 3)),
    "csc dense size too large": sparse_payload("csc_matrix", _shape=(2, 3 * 10**9)),
    "csc wrong format": sparse_payload("csc_matrix", format="csr"),
    "coo row out of range": sparse_payload("coo_matrix", row=np.array([0, 1, 10**7], np.int32)),
    "coo negative col": sparse_payload("coo_array", col=np.array([0, -1, 2], np.int32)),
    "coo short col": sparse_payload("coo_matrix", col=np.array([0], np.int32)),
    "coo coords not a pair": sparse_payload("coo_array", row=None, col=None, coords=(np.arange(3),)),
    "sparse state not a dict": P2.pickle(P2.build(P2.instance("scipy.sparse.csc", "csc_matrix"), P2.list())),
}


def test_crafted_sparse_states_are_refused_without_crashing(tmp_path):
    paths = [write(tmp_path, f"{i}.pkl", payload) for i, payload in enumerate(MALICIOUS_SPARSE.values())]
    for name, path, result in zip(MALICIOUS_SPARSE, paths, load_in_subprocess(paths)):
        assert result.startswith(f"REFUSED {path}: "), (name, result)
    assert "indices fall outside 0..1" in refused(paths[0])
    assert "more than the" in refused(paths[list(MALICIOUS_SPARSE).index("csc dense size too large")])


def array_state(shape, dtype=b"f8", data=b"", version=1):
    """The opcodes of an ndarray's BUILD state, whatever the shape, dtype code and data."""
    return P2.tuple(P2.int(version), P2.tuple(*(P2.int(n) for n in shape)),
                    P2.build(P2.call(P2.glob("numpy", "dtype"), P2.str(dtype), P2.int(0), P2.int(1)),
                             P2.tuple(P2.int(3), P2.str("<"), P2.none, P2.none, P2.none, P2.int(-1), P2.int(-1),
                                      P2.int(0))),
                    P2.bool(False), P2.str(data))


CRAFTED_ARRAYS = {
    "terabyte shape, no data": (P2.ndarray([], state=array_state((10**12,))), "more than the"),
    "data shorter than the shape": (P2.ndarray([], state=array_state((4,), data=b"\0" * 8)), "not the 32"),
    "object dtype": (P2.ndarray([], state=array_state((1,), dtype=b"O8")), "dtype O8"),
    "record dtype": (P2.ndarray([], state=array_state((1,), dtype=b"V8", data=b"\0" * 8)), "dtype V8"),
    "object data list": (P2.ndarray([], state=P2.tuple(P2.int(1), P2.tuple(P2.int(1)), P2.dtype("f8"),
                                                      P2.bool(False), P2.list(P2.int(1)))), "Python objects"),
    "negative dimension": (P2.ndarray([], state=array_state((-1,))), "non-negative"),
    "65 dimensions": (P2.ndarray([], state=array_state((1,) * 65, data=b"\0" * 8)), "shape"),
    "state version 7": (P2.ndarray([], state=array_state((1,), data=b"\0" * 8, version=7)), "state numpy pickles"),
    "structured dtype state": (P2.ndarray([], state=P2.tuple(P2.int(1), P2.tuple(P2.int(1)), P2.build(
        P2.call(P2.glob("numpy", "dtype"), P2.str("f8"), P2.int(0), P2.int(1)),
        P2.tuple(P2.int(3), P2.str("|"), P2.none, P2.tuple(P2.str("a")), P2.dict({"a": P2.int(1)}), P2.int(8),
                 P2.int(1), P2.int(0))), P2.bool(False), P2.str(b"\0" * 8))), "state numpy never pickles"),
    "scalar with wrong size": (P2.call(P2.glob("numpy.core.multiarray", "scalar"), P2.dtype("f8"), P2.str(b"\0")),
                               "1 bytes"),
    "complex scalar": (P2.call(P2.glob("numpy.core.multiarray", "scalar"), P2.dtype("c16"), P2.str(b"\0" * 16)),
                       "dtype c16"),
    "frombuffer terabyte": (P2.call(P2.glob("numpy._core.numeric", "_frombuffer"), P2.str(b""), P2.dtype("f8"),
                                    P2.tuple(P2.int(10**12)), P2.str("C")), "more than the"),
    "frombuffer odd order": (P2.call(P2.glob("numpy._core.numeric", "_frombuffer"), P2.str(b""), P2.dtype("f8"),
                                     P2.tuple(P2.int(0)), P2.str("K")), "order other than C, F, or K with"),
    "frombuffer axes repeated": (P2.call(P2.glob("numpy._core.numeric", "_frombuffer"), P2.str(b"\0" * 32),
                                         P2.dtype("f8"), P2.tuple(P2.int(2), P2.int(2)), P2.str("K"),
                                         P2.tuple(P2.int(0), P2.int(0))), "not a permutation"),
    "memo index of 2**31": (b"N" + b"r" + struct.pack("<I", 2**31 - 1), "memo index"),
    "bytes8 of 40 GB": (b"\x8e" + struct.pack("<Q", 40 << 30) + b"abc", "expected"),
    "unicode8 of 2**62": (b"\x8d" + struct.pack("<Q", 1 << 62) + b"abc", "expected"),
}


def test_crafted_arrays_and_sizes_are_refused_before_allocating(tmp_path):
    paths = {name: write(tmp_path, f"{i}.pkl", P2.pickle(body))
             for i, (name, (body, _)) in enumerate(CRAFTED_ARRAYS.items())}
    results = load_in_subprocess(paths.values())
    for (name, (_, match)), path, result in zip(CRAFTED_ARRAYS.items(), paths.values(), results):
        assert result.startswith(f"REFUSED {path}: ") and match in result, (name, result)


# ---------------------------------------------------------------------- nesting, cycles, expansion


LEAF = b"K\x01"
TO_X = b"q\x000}" + P2.str("x") + b"h\x00s"  # top object X → {'x': X} (via memo slot 0)


def chumpy_chain(n: int) -> bytes:
    """Ch whose x is a Ch whose x is ... n deep, the last one's x an array."""
    return CHUMPY + b"q\x01" + b"h\x01)\x81" * n + P2.ndarray(np.zeros(2)) + (TO_X + b"b") * n


def doubled(levels: int) -> bytes:
    """A list holding one list twice, `levels` deep: 2**levels leaves from a few bytes."""
    return LEAF + b"q\x000](h\x00h\x00e" * levels


NESTING = {
    "chumpy x is itself": (CHUMPY + b")\x81q\x01}" + P2.str("x") + b"h\x01sb", "refers to itself"),
    "chumpy chain 100k long": (chumpy_chain(100_000), f"more than {MAX_NESTING} levels"),
    "lists 100k deep": (b"]" * 10**5 + b"a" * (10**5 - 1), f"more than {MAX_NESTING} levels"),
    "dicts 100k deep": ((b"}" + P2.str("k")) * 10**5 + b"}" + b"s" * 10**5, f"more than {MAX_NESTING} levels"),
    "tuples 100k deep": (LEAF + b"\x85" * 10**5, f"more than {MAX_NESTING} levels"),
    "tuple 1M deep as a key (crashed CPython)": (b"}" + LEAF + b"\x85" * 10**6 + LEAF + b"s", "dict key or set member"),
    "list holding itself": (b"]q\x00h\x00a", "refers to itself"),
    "list twice, 40 levels": (doubled(40), "counting shared ones"),
    "colliding big int keys": (b"}(" + b"".join(P2.int(k * (2**61 - 1)) + LEAF for k in range(1, 20_000)) + b"u",
                               "dict key or set member"),
    "tuple keys": (b"}(" + b"".join(P2.int(k) + LEAF + b"\x86" + LEAF for k in range(100)) + b"u", "dict key"),
    "frozenset keys": (b"}((K\x01\x91K\x00u", "dict key or set member"),
    "set of tuples (protocol 4)": (b"\x8f(K\x01\x85\x90", "dict key or set member"),
}


def test_deep_nesting_cycles_and_hash_floods_are_refused_without_crashing(tmp_path):
    paths = {name: write(tmp_path, f"{i}.pkl", b"\x80\x04" + body + b".")
             for i, (name, (body, _)) in enumerate(NESTING.items())}
    results = load_in_subprocess(paths.values())
    for (name, (_, match)), path, result in zip(NESTING.items(), paths.values(), results):
        assert result.startswith(f"REFUSED {path}: ") and match in result, (name, result)


def test_nesting_up_to_the_limit_and_shared_values_load(tmp_path):
    deep = load_pickle(write(tmp_path, "deep.pkl", b"\x80\x02" + b"]" * MAX_NESTING + b"a" * (MAX_NESTING - 1) + b"."))
    for _ in range(MAX_NESTING - 1):
        (deep,) = deep
    assert deep == []
    shared = load_pickle(write(tmp_path, "shared.pkl", b"\x80\x02" + doubled(10) + b"."))
    assert shared[0] is shared[1] and len(shared) == 2
    with fake_chumpy() as Ch:
        chain = Ch(np.ones(2))
        for _ in range(MAX_NESTING - 2):
            chain = Ch(chain)
        payload = pickle.dumps({"x": chain}, protocol=2)
    np.testing.assert_array_equal(load_pickle(write(tmp_path, "chain.pkl", payload))["x"], np.ones(2))


# ---------------------------------------------------------------------- broken files


@pytest.mark.parametrize("payload", [
    b"", b"\x80\x02}q\x00(X", b"not a pickle at all", b"\x80\x05\x95garbage", b"\x80\x09N.",
    b"\x80\x02X\x02\x00\x00\x00\xff\xfe.",  # not UTF-8
    b"\x80\x02J\x01\x00.",  # truncated struct
    b"I99999999999999999999999999999999999999999999999999999" + b"9" * 5000 + b"\n.",  # too many digits
    b"S'unterminated\n.", b"\x80\x02(\x85.", b"\x80\x02h\x05.", b"\x80\x02a.", b"\x80\x02N\x81.",
    P2.pickle(P2.str("x\n" * 100) + b"R"),  # a multi-line message from the unpickler
])
def test_broken_files_raise_one_line_naming_the_file(tmp_path, payload):
    refused(write(tmp_path, "broken.pkl", payload))


def test_missing_files_folders_and_devices_are_refused(tmp_path):
    refused(tmp_path / "missing.pkl", "no such")
    refused(tmp_path, "folder")
    with pytest.raises(InputError, match="not a regular file"):
        load_pickle("/dev/zero")
