"""One runner per workspace. Snakemake and DVC each refuse a second run of their own kind, but not each other: a
`dvc repro` started while Snakemake runs (or a stage run by hand) would write the same outputs, and the reports
would mix the two runs. So a Snakemake run holds the workspace's runner lock from its start to its end (taken in
`onstart`, after the dry-run point, and refused while DVC holds its own repository lock), and a `vila` stage command
not run by such a run takes the lock for its own duration. DVC holds its repository lock for a whole `dvc repro`, so
the two refuse each other, with a message that names the holder.

The lock is an advisory `flock` on `.vila-runner.lock` in the workspace root: the kernel drops it when its process
ends, so a killed run leaves no stale lock (the file's text only names the last holder)."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import IO

LOCK_FILE = ".vila-runner.lock"
# Set by the holder for the processes it starts (Snakemake's jobs, torchrun's ranks): they run under its lock.
HOLDER_ENV = "VILA_RUNNER"
DVC_LOCK = Path(".dvc") / "tmp" / "lock"


class WorkspaceBusy(OSError):
    """Another runner works in this workspace."""


def describe(runner: str) -> str:
    """`runner (pid N, since HH:MM:SS)`: what a refused run is told about the holder."""
    return f"{runner} (pid {os.getpid()}, since {time.strftime('%H:%M:%S')})"


def dvc_is_running(root: Path = Path(".")) -> str | None:
    """The pid DVC wrote to its repository lock when a DVC command holds it now, else None."""
    path = root / DVC_LOCK
    if not path.is_file():
        return None
    with open(path) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return f.read().strip() or "?"
        fcntl.flock(f, fcntl.LOCK_UN)
    return None


def hold_workspace(runner: str, root: Path = Path(".")) -> IO[str]:
    """Take the workspace's runner lock for `runner`, kept until the returned file is closed or this process ends
    (and by the processes it starts with HOLDER_ENV set); WorkspaceBusy naming the holder when another has it."""
    path = root / LOCK_FILE
    lock = open(path, "a+")  # noqa: SIM115 (the lock lives as long as the open file: returned open)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        lock.close()
        raise WorkspaceBusy(f"{path}: this workspace is being run by {holder}; wait for it to end (or stop it), "
                            "then run again") from None
    lock.seek(0)
    lock.truncate()
    lock.write(runner + "\n")
    lock.flush()
    os.set_inheritable(lock.fileno(), True)  # torchrun's launcher (exec'd in place) keeps holding it
    os.environ[HOLDER_ENV] = runner
    return lock


def hold_for_snakemake(root: Path = Path(".")) -> IO[str]:
    """Snakemake's onstart: refused while a DVC command runs here, then held for the run."""
    pid = dvc_is_running(root)
    if pid is not None:
        raise WorkspaceBusy(f"{root / DVC_LOCK}: DVC (pid {pid}) is running in this workspace; wait for it to end "
                            "(or stop it), then run Snakemake again")
    return hold_workspace(describe("snakemake"), root)
