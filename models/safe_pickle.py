"""A restricted unpickler for data-only pickles (official FLAME models, VOCASET).

A pickle can run any code while loading, so a downloaded model file must never reach
`pickle.load`. This loader only builds numpy arrays, scipy sparse matrices and plain
containers; chumpy objects (which FLAME .pkl files hold, and chumpy no longer imports on
numpy 2) become plain arrays. Anything else is refused before it is called.
"""

import builtins
import importlib
import pickle
from pathlib import Path
from typing import Any, Callable

import numpy as np
import scipy.sparse

from models.errors import InputError

_SPARSE_CLASSES = frozenset(
    {"csc_matrix", "csr_matrix", "coo_matrix", "csc_array", "csr_array", "coo_array"}
)
_BUILTINS = frozenset({"set", "frozenset", "slice", "object"})
_NUMPY_CORE = ("numpy.core", "numpy._core")


def _numpy_core(submodule: str) -> Any:
    """numpy 2 renamed numpy.core to numpy._core; pickles name either spelling."""
    try:
        return importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:
        return importlib.import_module(f"numpy.core.{submodule}")


_NUMPY_FUNCTIONS: dict[tuple[str, str], Callable[..., Any]] = {
    ("multiarray", "_reconstruct"): _numpy_core("multiarray")._reconstruct,
    ("multiarray", "scalar"): _numpy_core("multiarray").scalar,
    ("numeric", "_frombuffer"): _numpy_core("numeric")._frombuffer,
}


class _ChumpyStandIn:
    """Takes the place of a chumpy class; keeps the pickled state so its array can be read."""

    chumpy_name = "chumpy"
    state: Any = None

    def __new__(cls, *args: Any, **kwargs: Any) -> "_ChumpyStandIn":
        return super().__new__(cls)

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Python 3 pickles bytes at protocol ≤ 2 as `_codecs.encode(text, 'latin1')`."""
    if encoding.replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals that data-only pickles need."""

    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file, encoding="latin1")
        self._path = path
        self._stand_ins: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "chumpy" or module.startswith("chumpy."):
            return self._stand_in(f"{module}.{name}")
        if module == "scipy.sparse" or module.startswith("scipy.sparse."):
            if name in _SPARSE_CLASSES:
                return getattr(scipy.sparse, name)
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return getattr(builtins, name)
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module.startswith(_NUMPY_CORE):
            found = _NUMPY_FUNCTIONS.get((module.rsplit(".", 1)[-1], name))
            if found is not None:
                return found
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if (module, name) in (("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor")):
            return self._reconstructor
        if (module, name) in (("copyreg", "__newobj__"), ("copy_reg", "__newobj__")):
            return self._newobj
        raise self._refuse(module, name)

    def _stand_in(self, qualified: str) -> type:
        if qualified not in self._stand_ins:
            self._stand_ins[qualified] = type(
                "ChumpyStandIn", (_ChumpyStandIn,), {"chumpy_name": qualified}
            )
        return self._stand_ins[qualified]

    def _check_constructible(self, cls: Any) -> None:
        allowed = isinstance(cls, type) and (
            issubclass(cls, _ChumpyStandIn)
            or (cls.__name__ in _SPARSE_CLASSES and cls is getattr(scipy.sparse, cls.__name__))
        )
        if not allowed:
            raise self._refuse(getattr(cls, "__module__", "?"), getattr(cls, "__name__", repr(cls)))

    def _reconstructor(self, cls: Any, base: Any, state: Any) -> Any:
        """copyreg._reconstructor, limited to `object.__new__` of an allowed class."""
        self._check_constructible(cls)
        if base is not object or state is not None:
            raise pickle.UnpicklingError("copyreg._reconstructor with a base other than object")
        return object.__new__(cls)

    def _newobj(self, cls: Any, *args: Any) -> Any:
        self._check_constructible(cls)
        return cls.__new__(cls, *args)

    def _refuse(self, module: str, name: str) -> InputError:
        return InputError(
            f"safe pickle loader refuses to load {module}.{name} from {self._path} "
            "(a model file must hold data only)"
        )


def _chumpy_array(obj: _ChumpyStandIn, path: Path) -> np.ndarray:
    """chumpy's Ch keeps its value in attribute `x` (itself possibly a Ch)."""
    state = obj.state
    if not isinstance(state, dict) or state.get("x") is None:
        raise InputError(f"{path}: {obj.chumpy_name} object holds no array data")
    x = state["x"]
    return _chumpy_array(x, path) if isinstance(x, _ChumpyStandIn) else np.asarray(x)


def _replace_stand_ins(obj: Any, path: Path, seen: set[int]) -> Any:
    """Swap every chumpy stand-in in nested dicts, lists and tuples for its array."""
    if isinstance(obj, _ChumpyStandIn):
        return _chumpy_array(obj, path)
    if isinstance(obj, (dict, list)):
        if id(obj) in seen:
            return obj
        seen.add(id(obj))
        keys = obj.keys() if isinstance(obj, dict) else range(len(obj))
        for key in list(keys):
            obj[key] = _replace_stand_ins(obj[key], path, seen)
        return obj
    if isinstance(obj, tuple):
        return tuple(_replace_stand_ins(item, path, seen) for item in obj)
    return obj


def load_pickle(path: str | Path) -> Any:
    """Load a data-only pickle (Python 2 or 3) with chumpy objects turned into arrays."""
    path = Path(path)
    try:
        with open(path, "rb") as file:
            data = _RestrictedUnpickler(file, path).load()
    except InputError:
        raise
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err})") from err
    except Exception as err:  # any failure to unpickle means the file is not a usable pickle
        raise InputError(f"{path}: not a readable pickle ({type(err).__name__}: {err})") from err
    return _replace_stand_ins(data, path, set())
