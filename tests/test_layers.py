"""The package rules of docs/architecture.md, read from the source's own import statements:
who may import whom, no import circles, Qt only in the GUI, and a runtime that never loads the
training code."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "models", "renderer", "avatar_app")
QT = ("PySide6", "pyqtgraph")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, relative imports resolved, at any depth (lazy imports and
    TYPE_CHECKING ones count too)."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


SOURCES = {_module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}
IMPORTS = {name: _imports(path) for name, path in SOURCES.items()}


def _offences(importer: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(f"{name} imports {module}" for name, modules in IMPORTS.items()
                  if name == importer or name.startswith(importer + ".")
                  for module in modules if module.split(".")[0] in forbidden or
                  any(module == f or module.startswith(f + ".") for f in forbidden))


@pytest.mark.parametrize("package, forbidden", [
    ("common", ("models", "renderer", "avatar_app", "assets", "torch")),
    ("models", ("renderer", "avatar_app", *QT)),
    ("renderer", ("models", "avatar_app", "assets", *QT)),
])
def test_lower_floors_import_nothing_from_above(package: str, forbidden: tuple[str, ...]) -> None:
    assert _offences(package, forbidden) == []


def test_qt_only_in_the_gui() -> None:
    offences = [o for o in _offences("avatar_app", QT) if not o.startswith("avatar_app.gui")]
    assert offences == []


def test_runtime_model_folders_import_no_training_code() -> None:
    for folder in ("models.rig", "models.audio", "models.drivers"):
        assert _offences(folder, ("models.learning",)) == []


def test_no_import_circles() -> None:
    graph = {name: {m for m in modules if m in SOURCES and m != name} for name, modules in IMPORTS.items()}
    packages = {name for name, path in SOURCES.items() if path.name == "__init__.py"}
    for name in graph:  # a package's (empty) __init__ is not a real dependency
        graph[name] -= packages
    circles, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                circles.append(" -> ".join(trail[trail.index(nxt):] + [node, nxt]) if nxt in trail else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, trail + [node])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    assert circles == []


def test_rendering_the_demo_loads_no_training_code(tmp_path: Path) -> None:
    """What `avatar render --demo` imports, from a fresh interpreter: no training modules, no
    speech-model library, no Qt."""
    script = (
        "import sys\n"
        "from avatar_app.cli import main\n"
        f"code = main(['render', '--demo', '--duration', '0.2', '--size', '64x64', '-q', '-o', {str(tmp_path / 'f')!r}])\n"
        "heavy = ('models.learning', 'transformers', 'PySide6', 'pyqtgraph')\n"
        "print(code, sorted(m for m in sys.modules if m.split('.')[0] in heavy or m.startswith(heavy)))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last == "0 []", result.stdout


IMPORT_NAMES = {"pyside6": "PySide6", "pyyaml": "yaml", "imageio-ffmpeg": "imageio_ffmpeg"}


def test_declared_dependencies_are_what_the_code_imports() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = [spec for extra, specs in project["optional-dependencies"].items() if extra != "test" for spec in specs]
    declared = {IMPORT_NAMES.get(name, name) for name in  # what the code imports: dependencies and optional extras
                (re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0].lower() for spec in [*project["dependencies"], *optional])}
    ours = {*PACKAGES, "assets"}
    imported = {module.split(".")[0] for modules in IMPORTS.values() for module in modules}
    third_party = {m for m in imported - ours if m not in sys.stdlib_module_names}
    assert third_party == declared
