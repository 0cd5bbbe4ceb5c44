"""A restricted unpickler for data-only pickles (official FLAME models, VOCASET tables).

A pickle is a program: loading one calls whatever callables it names and then each object's
own `__setstate__` on bytes from the file. So a downloaded model file must never reach
`pickle.load`, and it is not enough to allow "harmless" classes either: numpy's and scipy's
constructors and `__setstate__` trust their state (a csc_matrix built with out-of-range
`indices` writes outside its buffer on `toarray()`). Hence the design:

- The unpickler never builds a numpy, scipy or chumpy object. Each class a pickle may name
  is a `_StandIn` that only records its arguments and state; after loading, `_Resolver`
  rebuilds arrays, dtypes and sparse matrices through numpy's and scipy's public,
  validating constructors, after checking dtypes, shapes, index ranges and sizes
  (MAX_ARRAY_BYTES, also for a sparse matrix made dense). Chumpy objects become their array.
- The other callables a pickle may name (`set`, the copyreg helpers, latin-1
  `_codecs.encode`, empty `bytes()`, numpy's `scalar`) are `_Call` objects: they check their
  arguments, and unlike functions they have no `__dict__` or attributes that a BUILD opcode
  could set (such as `__setstate__`). `frozenset` and `slice` are not allowed: as dict keys
  they, like tuples, could be crafted to share one hash.
- The file is read whole (at most MAX_ARRAY_BYTES) and `_prescan` walks its opcodes first,
  building nothing, for what CPython's C unpickler would trust: a declared length or frame
  longer than the file; a memo index far beyond the opcodes read (it allocates and zeroes a
  table that large); dict keys and set members that can be crafted to share one hash
  (tuples, frozensets, integers beyond ±2**61), which makes building the dict take hours
  (and a tuple nested a million deep overflows the C stack when hashed).
- After loading, `_Resolver` walks everything once: at most MAX_NESTING levels (chumpy `x`
  chains included), no cycles, and at most MAX_PICKLE_ITEMS values counting a shared
  container each time it is reached (a list holding one list twice, 30 levels deep, would be
  a billion numbers to a later `np.asarray`). Its recursion is bounded by MAX_NESTING.
- Every failure is one line, `InputError(f"{path}: ...")`.
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
import re
import sys
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import scipy.sparse

from common.errors import InputError, error_detail
from common.files import check_input_file
from common.limits import MAX_NESTING, MAX_PICKLE_ITEMS
from models.rig.npz import check_array_bytes

_SPARSE_KINDS = ("csc_matrix", "csr_matrix", "coo_matrix", "csc_array", "csr_array", "coo_array")
# dtypes as numpy pickles them: booleans, integers, floats up to 64 bits, byte and text strings;
# no objects, records or dates, nor complex or long double (their scalars, as dict keys, can be
# crafted to share one hash)
_DTYPE_CODE = re.compile(r"b1|[iu][1248]|f[248]|[SU][1-9][0-9]{0,8}")
_HASH_MODULUS = sys.hash_info.modulus  # distinct integers below it have distinct hashes
_MAX_DIMS = 64  # numpy's own limit
_UNSET = object()


class _Refusal(Exception):
    """A problem with the file, worded for the user; `load_pickle` prefixes the path."""


def _shown(text: str, limit: int = 60) -> str:
    """A name from the file, short and on one line."""
    text = text[:limit].encode("unicode_escape").decode("ascii")
    return text + ("..." if len(text) >= limit else "")


# ------------------------------------------------------------------ what the unpickler builds


class _StandIn:
    """Built in place of a numpy, scipy or chumpy object: records what the pickle gives it."""

    __slots__ = ("args", "state")
    __hash__ = None  # like the arrays they become; keeps them out of sets and dict keys
    label = "object"  # what it stands for, in messages

    def __new__(cls, *args: Any, **kwargs: Any) -> _StandIn:
        self = object.__new__(cls)
        self.args, self.state = args, _UNSET
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass  # everything was recorded by __new__

    def __setstate__(self, state: Any) -> None:
        if self.state is not _UNSET:
            raise _Refusal("gives an object its state twice")
        self.state = state


class _ChumpyStandIn(_StandIn):
    __slots__ = ()
    label = "chumpy"


class _SparseStandIn(_StandIn):
    __slots__ = ()
    kind = "csc_matrix"


class _DtypeStandIn(_StandIn):
    __slots__ = ()
    label = "numpy.dtype"


class _ArrayStandIn(_StandIn):
    __slots__ = ()
    label = "numpy.ndarray"


_SPARSE_STAND_INS = {
    kind: type(kind, (_SparseStandIn,), {"__slots__": (), "kind": kind, "label": f"scipy.sparse.{kind}"})
    for kind in _SPARSE_KINDS
}


class _Call:
    """A callable a pickle may name. Unlike a function it has no attributes a BUILD opcode
    could set (a function's `__dict__` and `__defaults__` are writable)."""

    __slots__ = ("_function", "_name")

    def __init__(self, name: str, function: Callable[..., Any] | None) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_function", function)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self._name} has no settable attributes")

    def __call__(self, *args: Any) -> Any:
        if self._function is None:
            raise _Refusal(f"calls {self._name}, which a data file never does")
        return self._function(*args)


_NDARRAY = _Call("numpy.ndarray", None)  # only an argument of numpy's _reconstruct
_OBJECT = _Call("builtins.object", None)  # only an argument of copyreg._reconstructor


def _safe_key(value: Any) -> bool:
    """Whether `value` can be a set member without risking many members of one hash."""
    if type(value) is int:
        return abs(value) < _HASH_MODULUS
    return isinstance(value, (str, bytes, bool, float, type(None), np.generic))


def _set(items: Any = ()) -> set:
    """`set(items)` for items of plain, hash-safe values (Python pickles sets this way)."""
    if not isinstance(items, (list, tuple, set, dict, str, bytes)):
        raise _Refusal(f"builds a set from a {type(items).__name__}")
    values = list(items)
    if not all(_safe_key(value) for value in values):
        raise _Refusal("builds a set of values other than text and numbers")
    return set(values)


def _empty_bytes(*args: Any) -> bytes:
    """Python 3 pickles b'' at protocol ≤ 2 as `bytes()`; `bytes(n)` would allocate n bytes."""
    if args:
        raise _Refusal("calls bytes() with arguments")
    return b""


def _latin1_encode(text: Any, encoding: Any = "latin1") -> bytes:
    """Python 3 pickles bytes at protocol ≤ 2 as `_codecs.encode(text, 'latin1')`."""
    name = encoding.replace("-", "").replace("_", "").lower() if isinstance(encoding, str) else None
    if not isinstance(text, str) or name not in ("latin1", "iso88591"):
        raise _Refusal("calls _codecs.encode other than on text to latin-1")
    return text.encode("latin1")


def _reconstruct(cls: Any, shape: Any, dtype: Any) -> _ArrayStandIn:
    """numpy's `_reconstruct(ndarray, (0,), b'b')`, followed by a BUILD with the array's state."""
    if cls is not _NDARRAY:
        raise _Refusal("asks numpy's _reconstruct for something other than a plain ndarray")
    return _ArrayStandIn()


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any, axis_order: Any = None) -> _ArrayStandIn:
    """numpy's pickle (protocol 5) of an array whose memory is contiguous: its bytes, dtype,
    shape and order C or F, or (numpy 2) order K and the axes to transpose the C-order array by."""
    if (order, axis_order is None) not in (("C", True), ("F", True), ("K", False)):
        raise _Refusal("gives numpy's _frombuffer an order other than C, F, or K with axes")
    array = _ArrayStandIn() if axis_order is None else _ArrayStandIn(axis_order)  # args: the axes
    array.state = (shape, dtype, order == "F", buffer)
    return array


def _scalar(dtype: Any, data: Any) -> np.generic:
    """numpy's `scalar(dtype, bytes)`: built now, since a scalar may be a dict key."""
    dtype = _dtype(dtype)
    raw = _raw_bytes(data)
    if len(raw) != dtype.itemsize:
        raise _Refusal(f"gives a numpy {dtype} scalar {len(raw)} bytes")
    return np.frombuffer(raw, dtype=dtype, count=1)[0]


def _new(cls: Any, *args: Any) -> _StandIn:
    if not (isinstance(cls, type) and issubclass(cls, (_ChumpyStandIn, _SparseStandIn))):
        raise _Refusal("asks copyreg to build something other than a chumpy or scipy sparse object")
    return cls.__new__(cls, *args)


def _reconstructor(cls: Any, base: Any, state: Any) -> _StandIn:
    """copyreg._reconstructor, as Python 2 and protocols 0-1 pickle new-style classes."""
    if base is not _OBJECT or state is not None:
        raise _Refusal("calls copyreg._reconstructor with a base other than object")
    return _new(cls)


def _both(modules: tuple[str, ...], names: dict[str, Any]) -> dict[tuple[str, str], Any]:
    return {(module, name): value for module in modules for name, value in names.items()}


_GLOBALS: dict[tuple[str, str], Any] = {
    **_both(("builtins", "__builtin__"), {
        "set": _Call("set", _set), "bytes": _Call("bytes", _empty_bytes), "object": _OBJECT}),
    **_both(("copyreg", "copy_reg"), {
        "_reconstructor": _Call("copyreg._reconstructor", _reconstructor),
        "__newobj__": _Call("copyreg.__newobj__", _new)}),
    ("_codecs", "encode"): _Call("_codecs.encode", _latin1_encode),
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DtypeStandIn,
    **_both(("numpy.core.multiarray", "numpy._core.multiarray"), {
        "_reconstruct": _Call("numpy _reconstruct", _reconstruct), "scalar": _Call("numpy scalar", _scalar)}),
    **_both(("numpy.core.numeric", "numpy._core.numeric"), {
        "_frombuffer": _Call("numpy _frombuffer", _frombuffer)}),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals above, chumpy classes and the scipy sparse classes, all as
    stand-ins or `_Call`s."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, encoding="latin1")  # Python 2 str: text, or an array's bytes
        self._chumpy: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "chumpy" or module.startswith("chumpy."):
            return self._chumpy_class(f"{module}.{name}")
        if (module == "scipy.sparse" or module.startswith("scipy.sparse.")) and name in _SPARSE_STAND_INS:
            return _SPARSE_STAND_INS[name]
        found = _GLOBALS.get((module, name))
        if found is None:
            raise _Refusal(f"refuses to load {_shown(module)}.{_shown(name)} (only plain data is read from pickles)")
        return found

    def _chumpy_class(self, qualified: str) -> type:
        if qualified not in self._chumpy:
            self._chumpy[qualified] = type("ChumpyStandIn", (_ChumpyStandIn,), {"__slots__": (), "label": qualified})
        return self._chumpy[qualified]


# ------------------------------------------------------------------ before loading: the opcodes


class _Opcode(NamedTuple):
    """What `_prescan` needs of an opcode: its argument's reader and its stack effect."""

    name: str
    read_arg: Callable[[io.BytesIO], Any] | None
    marked: bool  # takes the objects above the topmost MARK
    below: int  # objects it takes (below the mark, if marked)
    pushes: int
    keys: slice | None  # which of the objects it takes are dict keys or set members
    floods: bool  # pushes a tuple or frozenset: as keys, many can be crafted to share one hash


_KEYS = {"SETITEM": slice(1, 2), "SETITEMS": slice(1, None, 2), "DICT": slice(0, None, 2),
         "ADDITEMS": slice(1, None), "FROZENSET": slice(0, None)}
_FLOODING = frozenset({"EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "FROZENSET"})
_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"})
_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_INTS = frozenset({"INT", "LONG", "LONG1", "LONG4"})  # BININT* hold at most 32 bits
# Picklers number memo slots 0, 1, 2, ...; the C unpickler's memo table grows to twice the
# highest index (8 bytes a slot), so indices are bounded by the opcodes read plus this slack.
_MEMO_SLACK = 1 << 20


def _opcode(op: pickletools.OpcodeInfo) -> _Opcode:
    before, marked = op.stack_before, pickletools.markobject in op.stack_before
    reader = None if op.arg is None else op.arg.reader
    if op.arg is not None and op.arg.name == "stringnl":
        reader = _skip_line  # genops would decode it as ASCII: numpy's bytes in Python 2 text pickles are not
    return _Opcode(op.name, reader, marked, before.index(pickletools.markobject) if marked else len(before),
                   len(op.stack_after), _KEYS.get(op.name), op.name in _FLOODING)


def _skip_line(file: io.BytesIO) -> None:
    if not file.readline().endswith(b"\n"):
        raise pickle.UnpicklingError("a text argument without its newline")


_OPCODES = {op.code.encode("latin1"): _opcode(op) for op in pickletools.opcodes}


def _prescan(file: io.BytesIO) -> None:
    """Walk the opcodes with pickletools' argument readers (which check every declared length
    against the bytes there), building nothing, and refuse what the C unpickler would trust
    (see the module docstring). The simulated stack holds, per object, whether it could flood
    a dict as a key."""
    stack: list[bool] = []
    marks: list[int] = []
    memo: dict[int, bool] = {}
    size = len(file.getbuffer())
    for count in range(MAX_PICKLE_ITEMS):
        op = _OPCODES.get(file.read(1))
        if op is None:
            raise pickle.UnpicklingError(f"unknown opcode at byte {file.tell() - 1}, or no STOP at the end")
        arg = op.read_arg(file) if op.read_arg else None
        if op.name in _PUTS:
            index = len(memo) if op.name == "MEMOIZE" else arg
            if index > count + _MEMO_SLACK:
                raise _Refusal(f"pickle memo index {index} at opcode {count} is out of range")
            memo[index] = bool(stack) and stack[-1]
        elif op.name in _GETS:
            stack.append(memo.get(arg, False))
        elif op.name == "MARK":
            marks.append(len(stack))
        elif op.name == "FRAME" and arg > size - file.tell():
            raise _Refusal(f"pickle frame of {arg} bytes is longer than the file")
        elif op.name == "POP" and marks and marks[-1] == len(stack):
            marks.pop()  # POP takes the topmost mark when nothing lies above it
        elif op.name == "DUP":
            stack.append(bool(stack) and stack[-1])
        else:
            operands = _pop(stack, marks, op)
            if op.keys and any(operands[op.keys]):
                raise _Refusal("has a dict key or set member that is a tuple, a frozenset or an integer "
                               "beyond ±2**61 (refused: such keys can make loading take hours)")
            if op.name == "STOP":
                return
            if op.pushes:
                stack.append(op.floods or (op.name in _INTS and abs(arg) >= _HASH_MODULUS))
    raise _Refusal(f"holds more than {MAX_PICKLE_ITEMS:,} pickle opcodes")


def _pop(stack: list[bool], marks: list[int], op: _Opcode) -> list[bool]:
    """Take `op`'s operands off the simulated stack: those above the topmost mark, if it takes
    them, and those it takes below."""
    operands: list[bool] = []
    if op.marked:
        if not marks:
            raise pickle.UnpicklingError(f"{op.name} without a MARK")
        operands = stack[marks[-1]:]
        del stack[marks.pop():]
    if len(stack) < op.below:
        raise pickle.UnpicklingError(f"{op.name} finds too few objects on the stack")
    if op.below:
        operands = stack[len(stack) - op.below:] + operands
        del stack[len(stack) - op.below:]
    return operands


# ------------------------------------------------------------------ after loading: the objects


def _index(value: Any) -> int:
    """A non-negative size or index: a Python or numpy integer, not a bool."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
        raise _Refusal("declares a size that is not a non-negative integer")
    return int(value)


def _shape(value: Any, ndim: int | None = None) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or len(value) > _MAX_DIMS or (ndim is not None and len(value) != ndim):
        raise _Refusal(f"declares a shape that is not a tuple of {ndim or 'at most 64'} sizes")
    return tuple(_index(n) for n in value)


def _axes(value: Any, ndim: int) -> tuple[int, ...]:
    axes = _shape(value)
    if sorted(axes) != list(range(ndim)):
        raise _Refusal(f"gives numpy's _frombuffer axes that are not a permutation of {ndim}")
    return axes


def _raw_bytes(value: Any) -> bytes | bytearray:
    """An array's bytes: bytes, or (Python 2 str, or numpy's text form) latin-1 text."""
    if isinstance(value, (bytes, bytearray)):
        return value
    if isinstance(value, str):
        try:
            return value.encode("latin1")
        except UnicodeEncodeError:
            raise _Refusal("holds array data as text beyond latin-1") from None
    raise _Refusal(f"holds array data as a {type(value).__name__} (arrays of Python objects are not supported)")


def _dtype(obj: Any) -> np.dtype:
    """The plain dtype a pickled `numpy.dtype(code, align, copy)` + BUILD state stands for."""
    code = obj.args[0] if isinstance(obj, _DtypeStandIn) and obj.args else None
    code = code.decode("latin1") if isinstance(code, bytes) else code
    if not isinstance(code, str) or not _DTYPE_CODE.fullmatch(code):
        shown = _shown(code, 20) if isinstance(code, str) else type(code).__name__
        raise _Refusal(f"holds numpy dtype {shown}, not a plain number or string type")
    state, order = obj.state, None
    if state is _UNSET:
        order = "|"
    elif isinstance(state, tuple) and len(state) >= 2 and (len(state) < 5 or state[3] is state[4] is None):
        order = state[1]  # (version, byte order, subdtype, names, fields, ...): no records
    if order not in ("<", ">", "|", "="):
        raise _Refusal(f"holds numpy dtype {code} with a state numpy never pickles for it")
    dtype = np.dtype(code)
    return dtype.newbyteorder(order) if order in "<>" else dtype


def _array(state: Any, where: str) -> np.ndarray:
    """An ndarray rebuilt from its pickled state: ([version,] shape, dtype, is_fortran, data)."""
    if (not isinstance(state, tuple) or len(state) not in (4, 5)
            or (len(state) == 5 and not (type(state[0]) is int and state[0] in (0, 1)))):
        raise _Refusal("holds a numpy array without the state numpy pickles")
    shape, dtype, fortran, data = state[-4:]
    dims, dtype, raw = _shape(shape), _dtype(dtype), _raw_bytes(data)
    if type(fortran) not in (bool, int):
        raise _Refusal("holds a numpy array whose memory order is not a flag")
    count = math.prod(dims)
    check_array_bytes(count * dtype.itemsize, where, "one pickled array")
    if len(raw) != count * dtype.itemsize:
        raise _Refusal(f"holds a {dtype} array of shape {dims} with {len(raw)} bytes of data, "
                       f"not the {count * dtype.itemsize} it needs")
    flat = np.frombuffer(raw, dtype=dtype, count=count)
    return flat.reshape(dims, order="F" if fortran else "C").copy(order="K")


def _numbers(value: Any, what: str) -> np.ndarray:
    try:
        array = np.asarray(value)
    except Exception as err:  # a ragged list, say
        raise _Refusal(f"{what} is not an array ({error_detail(err)})") from None
    if array.dtype.kind not in "biuf":
        raise _Refusal(f"{what} holds {array.dtype} values, not numbers")
    return array


def _check_indices(values: np.ndarray, bound: int, what: str) -> None:
    if values.dtype.kind not in "iu":
        raise _Refusal(f"{what} are {values.dtype}, not integers")
    if values.size and (values.min() < 0 or values.max() >= bound):
        raise _Refusal(f"{what} fall outside 0..{bound - 1}")


_PLAIN = frozenset({str, bytes, int, float, bool, type(None)})
_NESTED = (dict, list, tuple, set, frozenset, _ChumpyStandIn)  # what counts as a level


class _Resolver:
    """Replaces stand-ins by what they stand for and checks the loaded value as a whole (see
    the module docstring); `done` maps each object met to (itself, value, height, items)."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.done: dict[int, tuple[Any, Any, int, int]] = {}
        self.active: set[int] = set()

    def resolve(self, obj: Any, depth: int) -> tuple[Any, int, int]:
        """(value, height in levels, items counted along every path) of `obj`, `depth` levels down."""
        if type(obj) in _PLAIN or isinstance(obj, np.generic):
            return obj, 0, 1
        key = id(obj)
        if key in self.active:
            raise _Refusal("refers to itself (a cycle of containers or chumpy objects)")
        if key not in self.done:
            if depth >= MAX_NESTING and isinstance(obj, _NESTED):
                raise _Refusal(f"nests containers or chumpy objects more than {MAX_NESTING} levels deep")
            self.active.add(key)
            value, height, items = self._build(obj, depth)
            self.active.remove(key)
            self.done[key] = (obj, value, height, items)
        _, value, height, items = self.done[key]
        if depth + height > MAX_NESTING:
            raise _Refusal(f"nests containers or chumpy objects more than {MAX_NESTING} levels deep")
        if items > MAX_PICKLE_ITEMS:
            raise _Refusal(f"holds more than {MAX_PICKLE_ITEMS:,} values, counting shared ones each time "
                           "they are reached")
        return value, height, items

    def _build(self, obj: Any, depth: int) -> tuple[Any, int, int]:
        if isinstance(obj, (dict, list, tuple, set, frozenset)):
            return self._container(obj, depth)
        if isinstance(obj, _ChumpyStandIn):
            state = obj.state
            if not isinstance(state, dict) or state.get("x") is None:
                raise _Refusal(f"{obj.label} object holds no array data")
            x, height, items = self.resolve(state["x"], depth + 1)
            return _numbers(x, f"{obj.label} object's data"), height + 1, items + 1
        if isinstance(obj, _ArrayStandIn):
            array = _array(obj.state, self.where)
            return (array.transpose(_axes(obj.args[0], array.ndim)) if obj.args else array), 0, 1
        if isinstance(obj, _SparseStandIn):
            return self._sparse(obj, depth), 0, 1
        if isinstance(obj, _DtypeStandIn):
            return _dtype(obj), 0, 1
        if isinstance(obj, bytearray):
            return obj, 0, 1
        name = obj._name if isinstance(obj, _Call) else getattr(obj, "label", type(obj).__name__)
        raise _Refusal(f"holds {name} itself (a class or function), not data")

    def _container(self, obj: Any, depth: int) -> tuple[Any, int, int]:
        """Resolve a container's members in place (a tuple is rebuilt if one changed); set
        members and dict keys never change, since stand-ins are unhashable."""
        height, items, changed = 0, 1, {}
        is_dict = isinstance(obj, dict)
        for slot, member in list(obj.items() if is_dict else enumerate(obj)):
            if is_dict:
                _, key_height, key_items = self.resolve(slot, depth + 1)
                height, items = max(height, key_height), items + key_items
            value, member_height, member_items = self.resolve(member, depth + 1)
            height, items = max(height, member_height), items + member_items
            if value is not member:
                changed[slot] = value
        if changed and isinstance(obj, tuple):
            obj = tuple(changed.get(i, member) for i, member in enumerate(obj))
        else:
            for slot, value in changed.items():
                obj[slot] = value
        return obj, height + 1, items

    def _sparse(self, obj: _SparseStandIn, depth: int) -> Any:
        """A scipy sparse matrix rebuilt from the attributes old and new scipy pickle: data,
        indices and indptr (csc, csr) or row and col / coords (coo), and _shape (old: shape);
        flags such as maxprint and has_sorted_indices are recomputed, not trusted."""
        kind, state, fmt = obj.kind, obj.state, obj.kind[:3]
        if not isinstance(state, dict):
            raise _Refusal(f"holds a scipy {kind} without its attributes")
        if state.get("format", fmt) != fmt:
            raise _Refusal(f"holds a scipy {kind} whose format is not {fmt}")
        rows, cols = _shape(state["_shape"] if "_shape" in state else state.get("shape"), ndim=2)

        def vector(key: str) -> np.ndarray:
            if key not in state:
                raise _Refusal(f"holds a scipy {kind} without {key}")
            return self._vector(state[key], f"scipy {kind} {key}", depth)

        data = vector("data")
        if data.dtype.kind not in "biuf":
            raise _Refusal(f"holds a scipy {kind} of {data.dtype} values, not numbers")
        check_array_bytes(rows * cols * data.dtype.itemsize, self.where, f"a scipy {kind} made dense")
        build = getattr(scipy.sparse, kind)
        if fmt == "coo":
            coords = state["coords"] if "coords" in state else (state.get("row"), state.get("col"))
            if not (isinstance(coords, (tuple, list)) and len(coords) == 2):
                raise _Refusal(f"holds a scipy {kind} without row and column indices")
            row, col = (self._vector(c, f"scipy {kind} row or column indices", depth) for c in coords)
            if not len(row) == len(col) == len(data):
                raise _Refusal(f"holds a scipy {kind} with {len(row)} rows, {len(col)} columns, {len(data)} values")
            _check_indices(row, rows, f"scipy {kind} row indices")
            _check_indices(col, cols, f"scipy {kind} column indices")
            return build((data, (row, col)), shape=(rows, cols), copy=True)
        indices, indptr = vector("indices"), vector("indptr")
        major, minor = (cols, rows) if fmt == "csc" else (rows, cols)
        if len(indices) != len(data):
            raise _Refusal(f"holds a scipy {kind} with {len(indices)} indices for {len(data)} values")
        _check_indices(indptr, len(indices) + 1, f"scipy {kind} indptr values")
        if len(indptr) != major + 1 or indptr[0] != 0 or np.any(indptr[1:] < indptr[:-1]):
            raise _Refusal(f"holds a scipy {kind} whose indptr is not {major + 1} rising offsets from 0")
        nnz = int(indptr[-1])
        _check_indices(indices[:nnz], minor, f"scipy {kind} indices")
        matrix = build((data[:nnz], indices[:nnz], indptr), shape=(rows, cols), copy=True)
        matrix.check_format(full_check=True)
        return matrix

    def _vector(self, value: Any, what: str, depth: int) -> np.ndarray:
        array, _, _ = self.resolve(value, depth + 1)
        if not isinstance(array, np.ndarray) or array.ndim != 1:
            raise _Refusal(f"holds a {what} that is not a 1-D array")
        return array


def load_pickle(path: str | Path) -> Any:
    """Load a data-only pickle (Python 2 or 3) with chumpy objects turned into arrays and
    scipy sparse matrices rebuilt after checking them."""
    path = check_input_file(path, "pickle file")
    try:
        check_array_bytes(path.stat().st_size, str(path), "a pickle file")
        with open(path, "rb") as file:
            raw = file.read()
        _prescan(io.BytesIO(raw))
        data = _RestrictedUnpickler(io.BytesIO(raw)).load()
        del raw  # the arrays' bytes are copies, and are copied once more into the arrays
        return _Resolver(str(path)).resolve(data, 0)[0]
    except _Refusal as err:
        raise InputError(f"{path}: {err}") from None
    except InputError:
        raise
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or error_detail(err)})") from None
    except Exception as err:  # any failure to unpickle means the file is not a usable pickle
        raise InputError(f"{path}: not a readable pickle ({error_detail(err)})") from None
