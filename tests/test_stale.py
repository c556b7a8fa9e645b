"""No cached figure can go stale: each stage's code dependencies are computed (the import closure of its
module inside vila/, plus the notebooks it renders), so editing any module makes exactly the stages whose
closure holds it out of date, in Snakemake and in DVC alike."""

from __future__ import annotations

import json
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import ROOT, run
from vila.pipeline import STAGES, expand, import_closure, stage_code

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(smoke_dag: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke DAG built by Snakemake and recorded in dvc.lock, as `make reproduce` leaves a project."""
    project = tmp_path_factory.mktemp("stale") / "p"
    shutil.copytree(smoke_dag, project, symlinks=True)  # copy2: outputs keep their mtimes, newer than the code
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"],
                ["dvc", "add", "-q", "data"], ["dvc", "commit", "--force", "-q"]):
        run(cmd, project)
    assert snakemake_stale(project) == set() and dvc_stale(project) == set()
    return project


def snakemake_stale(project: Path) -> set[str]:
    out = run(["snakemake", "-n", "--cores", "1", "all"], project).stdout
    return set(re.findall(r"^rule (\w+):", out, re.M)) - {"all"}


def dvc_stale(project: Path) -> set[str]:
    out = run(["dvc", "status", "--json"], project).stdout
    return {name.split("@")[0] for name in json.loads(out or "{}")} - {"data.dvc"}


def downstream(stages: set[str], params: dict) -> set[str]:
    """The stages that read what `stages` write, transitively (Snakemake reruns them too)."""
    jobs = expand(params)
    found, grew = set(stages), True
    while grew:
        outs = [o for j in jobs if j["stage"] in found for o in j["outs"]]
        more = {j["stage"] for j in jobs for d in j["deps"]
                if any(o == d or o.startswith(d.rstrip("/") + "/") or d.startswith(o + "/") for o in outs)}
        grew = not more <= found
        found |= more
    return found


def code_files() -> list[str]:
    files = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "vila").rglob("*.py"))]
    return [*files, *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "notebooks").glob("*.ipynb"))]


def test_editing_a_module_makes_exactly_the_stages_that_import_it_stale(built: Path):
    import yaml

    params = yaml.safe_load((built / "params.yaml").read_text())
    closures = {st.name: set(stage_code(st)) for st in STAGES}
    problems = []
    for rel in code_files():
        path = built / rel
        before, times = path.read_bytes(), (path.stat().st_atime_ns, path.stat().st_mtime_ns)
        edit = b"# edited by test_stale\n" if rel.endswith(".py") else before.replace(b'"cells": [', b'"cells" : [', 1)
        path.write_bytes(before + edit if rel.endswith(".py") else edit)
        try:
            own = {name for name, files in closures.items() if rel in files}
            with ThreadPoolExecutor(2) as pool:  # the two dry runs side by side (one core each)
                dvc, smk = pool.submit(dvc_stale, built), pool.submit(snakemake_stale, built)
                got = {"dvc": dvc.result(), "snakemake": smk.result()}
            want = {"dvc": own, "snakemake": downstream(own, params) if own else set()}
            problems += [f"{rel}: {tool} says {sorted(got[tool])}, expected {sorted(want[tool])}"
                         for tool in got if got[tool] != want[tool]]
        finally:
            path.write_bytes(before)
            os.utime(path, ns=times)
    assert not problems, "\n".join(problems)


def test_the_closure_follows_imports_inside_functions_and_parent_packages(tmp_path):
    pkg = tmp_path / "vila"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from vila.sub import b\n")
    (pkg / "sub" / "b.py").write_text("from . import c\nimport numpy\n")
    (pkg / "sub" / "c.py").write_text("")
    (pkg / "unused.py").write_text("")
    assert import_closure("vila.a", root=tmp_path) == [
        "vila/__init__.py", "vila/a.py", "vila/sub/__init__.py", "vila/sub/b.py", "vila/sub/c.py"]


def test_the_stages_the_prompt_template_feeds_depend_on_it():
    """The case that went stale before: vila/data/prompts.py was a dependency of no stage."""
    users = {st.name for st in STAGES if "vila/data/prompts.py" in stage_code(st)}
    assert {"backbone", "teacher", "student", "evaluate_teacher", "evaluate_student"} <= users
