"""Shared fixtures: tiny params, and throwaway project directories that run the real DAG."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def repo_params() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "params.yaml").read_text())



def smoke_params() -> dict[str, Any]:
    """The smoke profile: tiny data, one optimisation step per training stage."""
    p = copy.deepcopy(repo_params())
    # Behaviour tests run on the machine's own kernels (MKL's vendor-neutral branch costs ~25% more time);
    # the pinned numerics are tested by tests/test_cpu.py.
    p["cpu_isa"] = "native"
    p["data"]["synthqa"]["questions"] = {"train": 12, "val": 8, "test": 8, "moments": 8}
    p["backbone"].update(steps=2, batch_size=4, warmup_steps=1)
    p["sevila"]["pretrain_val_clips"] = 4
    p["train"]["convergence"].update(max_epochs=1)
    p["train"]["teacher"].update(frames=[4, 32], batch_size=4, max_steps=1, warmup_steps=1)
    p["train"]["student"].update(batch_size=4, max_steps=1, warmup_steps=1)
    p["sevila"]["localizer"].update(batch_size=4, max_steps=1, warmup_steps=1)
    p["evaluate"].update(batch_size=8, chosen_sample=4)
    # one batch size and one thread: the smoke speed stage runs beside the seed study's jobs
    p["speed"].update(batch_sizes=[2], repeats=20, breakdown_repeats=1, warmup=1, threads=1)
    for name in ("vila_4f_no_distill", "vila_4f_visual_gate"):  # vila_4f's code path with a loss weight at 0;
        del p["variants"][name]  # the visual gate: tests/test_model.py
    p["report"]["selection_examples"] = 2
    p["seeds_study"] = [1]
    # the selection study at k = 4 (the smoke teachers are 4 and 32 frames), small hyper-parameter grids
    p["selection"].update(frames=[4], scorers=["backbone", "sevila_4f", "vila_4f", "vila_4f_fast"],
                          selectors=[s for s in p["selection"]["selectors"] if s != "vila_prompter_visual"],
                          bolt_exponents=[1, 4], aks_depths=[1, 2], aks_thresholds=[0.0, 0.1])
    return p


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    e.update(DVC_NO_ANALYTICS="1", DVC_NO_UPDATER="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return e


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout, check=False)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}")
    return out


def make_project(path: Path, params: dict[str, Any], dvc: bool = False, study: bool = False) -> Path:
    """A project directory with the repo's workflow, notebooks and dvc.yaml, and the given params; `study`: the seed
    study's study/dvc.yaml and the selection study's selection/dvc.yaml too (DVC reads every dvc.yaml of a project: `dvc status` then lists the study's stages)."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "workflow", path / "workflow")
    shutil.copytree(ROOT / "notebooks", path / "notebooks")
    shutil.copytree(ROOT / "vila", path / "vila", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("paper-figures.yaml", "dvc.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, path / name)
    if study:
        for pipeline in ("study", "selection"):
            (path / pipeline).mkdir(exist_ok=True)
            shutil.copy(ROOT / pipeline / "dvc.yaml", path / pipeline / "dvc.yaml")
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (path / "data").mkdir(exist_ok=True)
    if dvc:
        run(["git", "init", "-q"], path)
        run(["git", "config", "user.email", "ci@example.com"], path)
        run(["git", "config", "user.name", "ci"], path)
        run(["dvc", "init", "-q"], path)
        run(["dvc", "config", "core.analytics", "false"], path)
        run(["dvc", "add", "-q", "data"], path)
        run(["git", "add", "-A"], path)
        run(["git", "commit", "-qm", "init"], path)
    return path


@pytest.fixture(scope="module")
def backbone():
    """The embedded backbone at seed 0, untrained: (model, tokenizer)."""
    from vila.training.backbone import embedded_backbone

    return embedded_backbone(0)


# A cold DVC run of the chains behind three eval JSONs: every kind of stage up to evaluation (data, backbone,
# teachers, re_weight, a student, SeViLA's Answerer, pseudo-labels, Localizer), one stage at a time as DVC runs
# them. The stages after evaluation run the same derived commands (test_pipeline checks Snakemake and DVC agree).
DVC_TARGETS = ("evaluate_teacher@32", "evaluate_student@vila_4f", "evaluate_sevila@4")


@pytest.fixture(scope="session")
def dvc_cold(tmp_path_factory: pytest.TempPathFactory):
    """(project, process): the cold DVC run, started before the smoke DAG so that the two run side by side
    (DVC runs one stage at a time; the smoke DAG has one-job stretches). Wait with `wait_for`."""
    project = make_project(tmp_path_factory.mktemp("dvc"), smoke_params(), dvc=True)
    proc = subprocess.Popen(["dvc", "repro", *DVC_TARGETS], cwd=project, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    yield project, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def wait_for(started: tuple[Path, subprocess.Popen[str]], timeout: int = 900) -> tuple[Path, str]:
    project, proc = started
    out, _ = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"dvc repro failed ({proc.returncode}):\n{out[-4000:]}")
    return project, out


@pytest.fixture(scope="session")
def smoke_dag(tmp_path_factory: pytest.TempPathFactory, dvc_cold) -> Path:
    """The whole DAG, the seed study (seeds_study: [1]) and the selection study run once by Snakemake on the smoke
    profile."""
    project = make_project(tmp_path_factory.mktemp("smoke"), smoke_params())
    run(["snakemake", "all", "reproduce_seeds", "reproduce_selection", "--cores", "2"], project)
    return project
