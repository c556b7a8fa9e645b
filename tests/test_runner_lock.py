"""One runner per workspace (vila/pipeline/runner.py): a Snakemake run, `dvc repro` and a hand-run stage refuse each
other with a message naming the holder; the lock goes with its process, so a killed run leaves none behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import env, make_project, run, smoke_params
from vila.pipeline.runner import DVC_LOCK, HOLDER_ENV, LOCK_FILE

HOLD = """
import fcntl, sys, time
from pathlib import Path
path, text = Path(sys.argv[1]), sys.argv[2]
path.parent.mkdir(parents=True, exist_ok=True)
f = open(path, "a+")
fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
f.seek(0); f.truncate(); f.write(text); f.flush()
print("held", flush=True)
time.sleep(120)
"""


def hold(path: Path, text: str) -> subprocess.Popen[str]:
    """Another process holding `path`'s flock (as a runner or DVC would), until killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), text], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def vila(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    e = env()
    e.pop(HOLDER_ENV, None)
    return subprocess.run([sys.executable, "-m", "vila.cli", "--params", "params.yaml", *args], cwd=project, env=e,
                          capture_output=True, text=True, timeout=300, check=False)


def test_a_stage_is_refused_while_another_runner_holds_the_workspace(tmp_path):
    project = make_project(tmp_path / "p", smoke_params())
    holder = hold(project / LOCK_FILE, "snakemake (pid 4242, since 10:00:00)")
    try:
        out = vila(project, "download")
    finally:
        holder.kill()
        holder.wait()
    err = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(err) == 1, out.stderr
    assert "WorkspaceBusy" in err[0] and "snakemake (pid 4242" in err[0] and LOCK_FILE in err[0]
    assert not (project / "work").exists()  # nothing ran
    # the holder gone (killed: no clean-up ran), the same command runs
    assert vila(project, "download").returncode == 0
    assert (project / "work" / "synthqa" / "dataset" / "stats.json").is_file()


def test_snakemake_is_refused_while_dvc_or_a_stage_works_in_the_workspace(tmp_path):
    project = make_project(tmp_path / "p", smoke_params())
    for path, text, expected in ((project / DVC_LOCK, "31337", "DVC (pid 31337) is running"),
                                 (project / LOCK_FILE, "vila report (pid 99, since 10:00:00)", "vila report (pid 99")):
        holder = hold(path, text)
        try:
            out = run(["snakemake", "--cores", "1", "work/synthqa/dataset"], project, check=False)
        finally:
            holder.kill()
            holder.wait()
        assert out.returncode != 0 and expected in out.stdout + out.stderr, out.stdout[-2000:] + out.stderr[-2000:]
        assert not (project / "work").exists()
        path.unlink()


def test_a_snakemake_run_holds_the_workspace_and_its_jobs_run_under_it(tmp_path):
    """While Snakemake runs, a hand-run stage (as `dvc repro` would run it) is refused, naming Snakemake; the run's
    own jobs are not."""
    project = make_project(tmp_path / "p", smoke_params())
    e = env()
    e.pop(HOLDER_ENV, None)
    proc = subprocess.Popen(["snakemake", "--cores", "1", "work/synthqa/frames"], cwd=project, env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while not (project / LOCK_FILE).is_file() or "snakemake" not in (project / LOCK_FILE).read_text():
            assert proc.poll() is None and time.time() < deadline, "snakemake never took the workspace"
            time.sleep(0.2)
        refused = vila(project, "download")
        assert refused.returncode == 2 and f"snakemake (pid {proc.pid}" in refused.stderr, refused.stderr
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out[-3000:]
    assert (project / "work" / "synthqa" / "frames").is_dir()
    assert HOLDER_ENV not in os.environ
