"""Snakemake and DVC declare the same DAG: same commands, dependencies, params and outputs per job."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT, make_project, repo_params, run
from vila.config import load_params
from vila.pipeline.dvcfile import dvc_yaml_text, selection_dvc_yaml_text, study_dvc_yaml_text
from vila.pipeline.stages import ALL_STAGES, expand

PARAMS = load_params(ROOT / "params.yaml")


def snakemake_jobs(project: Path, targets: tuple[str, ...] = ("all", "reproduce_seeds", "reproduce_selection"),
                   ) -> dict[str, dict[str, list[str]]]:
    """cmd -> inputs/outputs, from Snakemake's own dry run of the whole DAG and the seed study."""
    out = run(["snakemake", "--cores", "1", "-n", "-F", "-p", *targets], project).stdout
    jobs = {}
    for block in out.split("rule ")[1:]:
        inputs = re.search(r"^\s+input: (.*)$", block, re.M)
        outputs = re.search(r"^\s+output: (.*)$", block, re.M)
        cmd = re.search(r"^Shell command: (.*)$", block, re.M)
        if cmd is None or cmd.group(1).strip() == "None":  # target rules (reproduce_*, all) have no command
            continue
        jobs[cmd.group(1).split(" 2>&1 | tee logs/")[0].strip()] = {
            "deps": sorted(inputs.group(1).split(", ")) if inputs else [],
            "outs": sorted(outputs.group(1).split(", ")) if outputs else [],
        }
    return jobs


def dvc_jobs(project: Path) -> dict[str, dict[str, list[str]]]:
    """cmd -> deps/params/outs, from DVC's own reading of dvc.yaml and study/dvc.yaml (foreach, matrix expanded)."""
    from dvc.repo import Repo

    jobs = {}
    with Repo(str(project)) as repo:
        for stage in repo.index.stages:
            if not stage.cmd:
                continue  # data.dvc
            deps = [d.def_path for d in stage.deps if not hasattr(d, "params")]
            params = [p for d in stage.deps if hasattr(d, "params") for p in d.params]
            jobs[stage.cmd] = {"deps": sorted(deps), "outs": sorted(o.def_path for o in stage.outs),
                               "params": sorted(params)}
    return jobs


def normalise(jobs: dict[str, dict[str, list[str]]]) -> dict[str, dict[str, list[str]]]:
    """Express each dependency as a source path or the upstream jobs (commands) it reaches.

    Upstream jobs are compared as the transitive closure: a folder dependency (DVC: models/<dataset>)
    stands for every job writing inside it, which is how DVC reads it, while Snakemake lists the
    models one by one; both reach the same jobs.
    """
    producers = {o: cmd for cmd, j in jobs.items() for o in j["outs"]}
    norm = {}
    for cmd, j in jobs.items():
        sources, upstream = set(), set()
        for d in j["deps"]:
            hits = {c for o, c in producers.items() if o == d or o.startswith(d.rstrip("/") + "/")}
            if hits:
                upstream |= hits
            else:
                sources.add(d)
        norm[cmd] = {"sources": sorted(sources), "upstream": upstream, "outs": j["outs"]}
    for cmd in norm:  # transitive closure
        seen, todo = set(), list(norm[cmd]["upstream"])
        while todo:
            c = todo.pop()
            if c not in seen:
                seen.add(c)
                todo.extend(norm[c]["upstream"])
        norm[cmd]["reach"] = sorted(seen)
    return norm


def agreement_problems(project: Path) -> list[str]:
    sm, dv = normalise(snakemake_jobs(project)), normalise(dvc_jobs(project))
    problems = [f"only in Snakemake: {c}" for c in sorted(set(sm) - set(dv))]
    problems += [f"only in dvc.yaml: {c}" for c in sorted(set(dv) - set(sm))]
    for cmd in sorted(set(sm) & set(dv)):
        for key in ("sources", "reach", "outs"):
            if sm[cmd][key] != dv[cmd][key]:
                problems.append(f"{cmd}: {key} differ: snakemake {sm[cmd][key]} vs dvc {dv[cmd][key]}")
    return problems


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("dag"), repo_params(), dvc=True, study=True)


def test_committed_dvc_yaml_is_generated_from_the_stage_list():
    assert (ROOT / "dvc.yaml").read_text() == dvc_yaml_text(repo_params()), "run `vila pipeline` and commit dvc.yaml"
    assert (ROOT / "study/dvc.yaml").read_text() == study_dvc_yaml_text(repo_params()), "run `vila pipeline`, commit it"
    assert (ROOT / "selection/dvc.yaml").read_text() == selection_dvc_yaml_text(), "run `vila pipeline`, commit it"


def test_snakemake_and_dvc_declare_the_same_dag(project):
    """The Table 1 DAG and the seed study (every seeded stage's twin at each of seeds_study, then `seeds`)."""
    assert agreement_problems(project) == []
    dvc = dvc_jobs(project)
    jobs = expand(repo_params(), ALL_STAGES)
    assert {"vila --seed 2 train student --variant vila_4f", "vila --seed 1 compare", "vila seeds",
            "vila scores --source backbone", "vila select --selector aks --frames 2", "vila selection"} <= set(dvc)
    for job in jobs:  # and DVC's params are the stage list's, key for key
        assert dvc[job["cmd"]]["params"] == job["params"], job["cmd"]
    assert len(dvc) == len(jobs)


def test_agreement_check_fails_when_either_side_changes_alone(project, tmp_path):
    # Snakemake side: the reweight rule loses its 32-frame teacher
    sm_changed = tmp_path / "sm"
    shutil.copytree(project, sm_changed)
    rules = sm_changed / "workflow" / "rules" / "stages.smk"
    rules.write_text(rules.read_text().replace("stage_inputs(_stage),", (
        '([i for i in stage_inputs(_stage) if not i.endswith("uniform_32f")] if _stage.name == "reweight" '
        "else stage_inputs(_stage)),"), 1))
    assert any("vila reweight" in p for p in agreement_problems(sm_changed))
    # DVC side: a stage's command changes
    dvc_changed = tmp_path / "dvc"
    shutil.copytree(project, dvc_changed)
    dvc_yaml = dvc_changed / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace("cmd: vila speed", "cmd: vila speed --fast"))
    assert any("vila speed" in p for p in agreement_problems(dvc_changed))


def test_reweight_deps_follow_train_student_select(tmp_path):
    """re_weight reads the teachers params name (the student's own budget, train.student.select, and data.frames):
    with select 2 the stage list, DVC's own reading of the committed dvc.yaml and Snakemake's DAG all name
    uniform_2f, and none the default's uniform_4f."""
    params = repo_params()
    params["train"]["student"]["select"] = 2
    project = make_project(tmp_path, params, dvc=True)
    want, stale = {"models/synthqa/uniform_2f", "models/synthqa/uniform_32f"}, "models/synthqa/uniform_4f"
    listed = next(j for j in expand(params) if j["stage"] == "reweight")["deps"]
    dvc = dvc_jobs(project)["vila reweight"]["deps"]
    snakemake = snakemake_jobs(project, ("reproduce_table1",))["vila reweight"]["deps"]
    for deps in (listed, dvc, snakemake):
        assert want <= set(deps) and stale not in deps, deps
    default = next(j for j in expand(repo_params()) if j["stage"] == "reweight")["deps"]
    assert stale in default and "models/synthqa/uniform_2f" not in default


def test_dry_run_lists_every_stage_rule(project):
    out = run(["snakemake", "-n", "--cores", "1", "-F", "reproduce_table1"], project).stdout
    for rule in ("download", "preprocess", "backbone", "teacher", "reweight", "student", "evaluate_teacher",
                 "evaluate_student", "speed", "summary", "report"):
        assert re.search(rf"^rule {rule}:", out, re.M), rule


def test_every_job_writes_its_own_log_file(project):
    out = run(["snakemake", "-n", "--cores", "1", "-F", "-p", "all"], project).stdout
    jobs = [b for b in out.split("rule ")[1:] if re.search(r"^Shell command: vila ", b, re.M)]
    logs = [re.search(r"^\s+log: (\S+)$", b, re.M) for b in jobs]
    assert jobs and all(logs), "a job without a log: file"
    names = [m.group(1) for m in logs]
    assert len(set(names)) == len(names) and all(n.startswith("logs/synthqa/") for n in names)
    assert "logs/synthqa/teacher_32.log" in names and "logs/synthqa/student_vila_4f.log" in names
    for block, name in zip(jobs, names, strict=True):
        assert re.search(rf"^Shell command: vila .* 2>&1 \| tee {re.escape(name)}$", block, re.M), name


def test_every_stage_names_an_entry_point_that_exists():
    """A rule's command runs its stage's entry point: each `module:function` of the stage list resolves."""
    import importlib
    import inspect

    for stage in ALL_STAGES:
        module, _, func = stage.entry.partition(":")
        fn = getattr(importlib.import_module(module), func, None)
        assert callable(fn), f"{stage.name}: {stage.entry} is not a function"
        assert next(iter(inspect.signature(fn).parameters)) == "params", stage.entry


def test_every_command_calls_its_entry_point_with_the_arguments_it_takes(monkeypatch, tmp_path):
    """Each stage command of a job of the DAG, parsed by the CLI, reaches its stage's entry point with keyword
    arguments that function accepts (the entry point itself replaced by a recorder; nothing runs). In a workspace
    of its own: a stage command takes the workspace's runner lock, which a test beside it may hold."""
    import importlib
    import inspect
    import shlex

    from vila import cli, config

    monkeypatch.chdir(tmp_path)
    calls = []
    monkeypatch.setattr(cli, "_call", lambda target, params, **kw: calls.append((target, kw)))
    monkeypatch.setattr("vila.runtime.setup", lambda *a, **k: None)
    monkeypatch.setattr("vila.device.setup_distributed", lambda: None)
    monkeypatch.setattr(config, "load_params", lambda path: PARAMS)
    for job in expand(PARAMS, ALL_STAGES):
        calls.clear()
        assert cli.main(shlex.split(job["cmd"])[1:]) == 0, job["cmd"]
        (target, kwargs), = calls
        assert target == next(s.entry for s in ALL_STAGES if s.name == job["stage"])
        module, _, func = target.partition(":")
        inspect.signature(getattr(importlib.import_module(module), func)).bind(PARAMS, **kwargs)
