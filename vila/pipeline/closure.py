"""A stage's code dependencies, computed: the import closure inside vila/ of its entry point's module and of the
run-time setup every stage gets (vila/runtime.py: CPU pins, seed, deterministic kernels, threads; vila/config.py:
the params it validates), plus the notebooks it renders and what their cells import. The CLI (vila/cli.py) only
parses a command line and calls the entry point: a stage does not depend on it, nor on this package (a stage's
command, deps, params and outputs are what the front-ends compare)."""

from __future__ import annotations

import ast
import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vila.pipeline.stages import Stage

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_MODULES = ("vila.config", "vila.runtime")  # every stage's command runs these before its entry point


def module_path(module: str, root: Path = ROOT) -> Path | None:
    """vila.data.video -> vila/data/video.py (a package: its __init__.py); None outside this project."""
    if module != "vila" and not module.startswith("vila."):
        return None
    base = root.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def imported_modules(source: str, module: str, is_package: bool = False, name: str = "<source>") -> set[str]:
    """Every module a piece of code imports, at the top or inside a function (a lazy import is a dependency
    too); `module` is the code's own module name, for relative imports."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x / from ..data import y
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], *([base] if base else [])])
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # `from vila.data import video`
    return found


@functools.cache  # keyed by the file's mtime: every rule of the Snakefile asks for the same files
def _file_imports(path: str, mtime_ns: int, module: str) -> frozenset[str]:
    return frozenset(imported_modules(Path(path).read_text(), module, path.endswith("__init__.py"), path))


def import_closure(*modules: str, root: Path = ROOT) -> list[str]:
    """Repo-relative paths of the files of `modules` and of everything inside vila/ they import, transitively
    (parent packages included: importing vila.data.video runs vila/__init__.py and vila/data/__init__.py)."""
    seen: dict[str, Path] = {}
    todo = list(modules)
    while todo:
        module = todo.pop()
        parts = module.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name in seen or (path := module_path(name, root)) is None:
                continue
            seen[name] = path
            todo.extend(_file_imports(str(path), path.stat().st_mtime_ns, name))
    return sorted(str(p.relative_to(root)) for p in seen.values())


def notebook_imports(path: Path) -> set[str]:
    """Modules the code cells of a notebook import."""
    cells = json.loads(path.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return imported_modules(code, "__notebook__", name=str(path))


def stage_code(stage: Stage, root: Path = ROOT) -> list[str]:
    """The code a stage depends on: files inside vila/ (the import closure of its entry point and of the run-time
    setup) and the notebooks it renders."""
    modules = [stage.entry_module, *RUNTIME_MODULES]
    for nb in stage.notebooks:
        modules += sorted(notebook_imports(root / nb))
    return sorted({*import_closure(*modules, root=root), *stage.notebooks})


def stage_deps(stage: Stage) -> list[str]:
    return [*stage_code(stage), *stage.deps]
