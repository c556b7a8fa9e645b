"""The smoke DAG through the SLURM profile on a one-node cluster, opt-in: `make test-slurm`.

`make test-slurm` starts the cluster (tests/slurm/start-cluster.sh: slurmctld, slurmd and slurmdbd on
loopback, as root), then this test runs `snakemake --profile workflow/profiles/slurm all` on the smoke
params. The profile is used as shipped except for what a 2-core node cannot give (8 CPUs per job); its
GPU and memory requests are scheduled as on a GPU cluster. Checks: every job ran as a SLURM job and shows
up COMPLETED in `sacct`, the training jobs were given 2 GPUs and ran under torchrun with 2 processes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import make_project, run, smoke_params

pytestmark = pytest.mark.slurm

TORCH_RULES = ["backbone", "teacher", "student", "reweight", "evaluate_teacher", "evaluate_student", "uniform_answerer",
               "pseudolabel", "localizer", "localize", "answerer", "sevila", "sevila_uniform_answerer",
               "evaluate_sevila", "evaluate_sevila_uniform_answerer", "speed"]


@pytest.fixture(scope="module")
def cluster() -> None:
    sinfo = shutil.which("sinfo")
    state = subprocess.run([sinfo, "-h", "-o", "%T"], capture_output=True, text=True) if sinfo else None
    if state is None or state.returncode != 0 or not {"idle", "mixed"} & set(state.stdout.split()):
        pytest.fail("no SLURM cluster answers: run tests/slurm/start-cluster.sh as root (make test-slurm does)")
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install -e '.[slurm]' (make test-slurm does)")


def submitted_jobs(log: str) -> dict[str, str]:
    """SLURM job id -> rule, from Snakemake's log lines "... submitted with SLURM jobid N (log: .../rule_R/...)"."""
    found = re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*?/slurm_logs/rule_(\w+)/", log)
    return dict(found)


def test_smoke_dag_through_the_slurm_profile(cluster: None, tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", smoke_params())
    started = (datetime.now() - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
    out = run(["snakemake", "--profile", "workflow/profiles/slurm", "all",
               "--default-resources", "slurm_partition=gpu", "cpus_per_task=1",
               "--set-threads", *[f"{rule}=1" for rule in TORCH_RULES],
               "--slurm-init-seconds-before-status-checks", "5", "--slurm-keep-successful-logs"],
              project, timeout=1800)
    for name in ("table1", "table2", "speed", "training"):
        assert (project / "reports" / f"{name}.html").is_file()

    jobs = submitted_jobs(out.stdout + out.stderr)
    rules = set(jobs.values())
    assert rules == {"download", "preprocess", *TORCH_RULES, "compare", "summary", "report"}, rules
    accounting = run(["sacct", "-X", "-P", "-n", "-S", started, "-j", ",".join(jobs),
                      "--format=JobID,State,AllocTRES,Comment"], project).stdout
    rows = {line.split("|")[0]: line.split("|") for line in accounting.splitlines() if line}
    assert set(rows) == set(jobs), f"sacct lists {sorted(rows)}, Snakemake submitted {sorted(jobs)}"
    for job_id, (_, state, tres, comment) in rows.items():
        assert state == "COMPLETED", (jobs[job_id], state)
        assert jobs[job_id] in comment, (job_id, comment)
        if jobs[job_id] in ("teacher", "student", "uniform_answerer", "answerer", "localizer"):
            assert "gres/gpu=2" in tres, (jobs[job_id], tres)

    # A training job given 2 GPUs ran `vila train` under torchrun: 2 processes, rank 0 wrote the metrics.
    for model in ("uniform_4f", "vila_4f"):
        metrics = json.loads((project / "models" / "synthqa" / model / "metrics.json").read_text())
        assert metrics["world_size"] == 2, model
    again = run(["snakemake", "--profile", "workflow/profiles/slurm", "all", "-n"], project)
    assert "Nothing to be done" in again.stdout + again.stderr
