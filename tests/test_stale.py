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
from vila.pipeline.closure import import_closure, stage_code
from vila.pipeline.stages import STAGES, expand


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


def snakemake_stale(project: Path, *targets: str) -> set[str]:
    out = run(["snakemake", "-n", "--cores", "1", *(targets or ("all",))], project).stdout
    return set(re.findall(r"^rule (\w+):", out, re.M)) - {"all", *targets}


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


def snakemake_changed_code(project: Path) -> dict[str, set[str]]:
    """stage -> the edited code files among the inputs Snakemake gives its jobs (a job whose input is newer than
    its output reruns; the end-to-end test below checks that rerun on one module)."""
    out = run(["snakemake", "-n", "-F", "--cores", "1", "all"], project).stdout
    changed: dict[str, set[str]] = {}
    for block in out.split("\nrule ")[1:]:
        rule = block.split(":", 1)[0].strip()
        inputs = re.search(r"^\s+input: (.*)$", block, re.M)
        files = {f.strip() for f in inputs.group(1).split(",")} if inputs else set()
        changed.setdefault(rule, set()).update(f for f in files if f.startswith(("vila/", "notebooks/")))
    changed.pop("all", None)
    return changed


def dvc_changed_code(project: Path) -> dict[str, set[str]]:
    """stage -> the code files `dvc status` reports as its modified dependencies."""
    out = json.loads(run(["dvc", "status", "--json"], project).stdout or "{}")
    changed: dict[str, set[str]] = {}
    for name, entries in out.items():
        if name == "data.dvc":
            continue
        deps = {f for e in entries if isinstance(e, dict) for f in e.get("changed deps", {})}
        changed.setdefault(name.split("@")[0], set()).update(f for f in deps if f.startswith(("vila/", "notebooks/")))
    return changed


def code_files() -> list[str]:
    files = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "vila").rglob("*.py"))]
    return [*files, *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "notebooks").glob("*.ipynb"))]


def edit(path: Path) -> None:
    before = path.read_bytes()
    path.write_bytes(before + b"# edited by test_stale\n" if path.suffix == ".py"
                     else before.replace(b'"cells": [', b'"cells" : [', 1))


@pytest.mark.slow
def test_editing_a_module_makes_exactly_the_stages_that_import_it_stale(built: Path):
    """Every module of vila/ and every notebook edited (a comment is enough): DVC then names, as the changed
    dependencies of each stage, exactly the edited files in that stage's closure, and Snakemake's jobs take exactly
    those files as inputs; so editing any one of them makes exactly the stages whose closure holds it stale.
    (One dry run per tool reads every module's stages at once.)"""
    project = built.parent / "edited"
    shutil.copytree(built, project, symlinks=True)
    files = code_files()
    for rel in files:
        edit(project / rel)
    closures = {st.name: set(stage_code(st)) & set(files) for st in STAGES}
    with ThreadPoolExecutor(2) as pool:  # the two dry runs side by side (one core each)
        dvc, smk = pool.submit(dvc_changed_code, project), pool.submit(snakemake_changed_code, project)
        got = {"dvc": dvc.result(), "snakemake": smk.result()}
    problems = []
    for tool, changed in got.items():
        for stage, closure in closures.items():
            if changed.get(stage, set()) != closure:
                problems.append(f"{tool}, {stage}: reruns for {sorted(changed.get(stage, set()) ^ closure)} "
                                "(the difference from its closure)")
    assert not problems, "\n".join(problems)
    assert all(closures.values()) and "vila/data/prompts.py" in closures["evaluate_student"]


@pytest.mark.slow
def test_one_edit_stales_its_stages_and_their_downstream(built: Path):
    """The end-to-end case, one module: the prompt template makes exactly its stages stale in DVC, and those
    plus what reads their outputs in Snakemake."""
    import yaml

    path, rel = built / "vila/data/prompts.py", "vila/data/prompts.py"
    before, times = path.read_bytes(), (path.stat().st_atime_ns, path.stat().st_mtime_ns)
    edit(path)
    try:
        own = {st.name for st in STAGES if rel in stage_code(st)}
        params = yaml.safe_load((built / "params.yaml").read_text())
        assert dvc_stale(built) == own
        assert snakemake_stale(built) == downstream(own, params)
    finally:
        path.write_bytes(before)
        os.utime(path, ns=times)
    assert snakemake_stale(built) == set() and dvc_stale(built) == set()


def edited(project: Path, rel: str, old: bytes, new: bytes) -> tuple[bytes, tuple[int, int]]:
    path = project / rel
    before, times = path.read_bytes(), (path.stat().st_atime_ns, path.stat().st_mtime_ns)
    assert old in before, rel
    path.write_bytes(before.replace(old, new, 1))
    return before, times


def restore(project: Path, rel: str, saved: tuple[bytes, tuple[int, int]]) -> None:
    (project / rel).write_bytes(saved[0])
    os.utime(project / rel, ns=saved[1])


@pytest.mark.slow
def test_editing_a_selection_rule_stales_only_the_selection_study(built: Path):
    """The selection rules are the selection study's code: Table 1's DAG (DVC and Snakemake) has nothing to redo,
    the study's jobs (its reader, scores, select jobs and report) are stale."""
    rel = "vila/selection/rules.py"
    saved = edited(built, rel, b"def uniform(", b"def uniform(  ")
    try:
        assert dvc_stale(built) == set() and snakemake_stale(built) == set()
        assert snakemake_stale(built, "reproduce_selection") == {"reader", "scores", "select", "selection"}
    finally:
        restore(built, rel, saved)


@pytest.mark.slow
def test_editing_the_cli_stales_nothing(built: Path):
    """vila/cli.py only parses a command line: a new help string changes no figure, so nothing reruns."""
    rel = "vila/cli.py"
    saved = edited(built, rel, b'help="fail if dvc.yaml differs from the stage list"', b'help="fail on a stale dvc.yaml"')
    try:
        assert dvc_stale(built) == set() and snakemake_stale(built, "all", "reproduce_seeds", "reproduce_selection") == set()
    finally:
        restore(built, rel, saved)


@pytest.mark.slow
def test_editing_the_training_loop_stales_every_training_stage_and_what_follows(built: Path):
    import yaml

    rel = "vila/training/loop.py"
    saved = edited(built, rel, b"def lr_factor(", b"def lr_factor( ")
    try:
        own = {st.name for st in STAGES if rel in stage_code(st)}
        assert {"backbone", "teacher", "reweight", "student", "uniform_answerer", "localizer", "answerer"} <= own
        assert not own & {"download", "preprocess", "evaluate_teacher", "compare", "report"}
        params = yaml.safe_load((built / "params.yaml").read_text())
        assert dvc_stale(built) == own
        assert snakemake_stale(built) == downstream(own, params)
    finally:
        restore(built, rel, saved)


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
