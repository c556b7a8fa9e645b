"""DVC remote round trip against an S3-compatible server on loopback (moto), opt-in: `make test-remote`.

Pushes the raw data and every stage output of a smoke run, clones the repository into a fresh folder,
pulls, and `dvc status` is clean there.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import BIN, run

pytestmark = pytest.mark.remote
pytest.importorskip("dvc_s3", reason="pip install -e '.[s3]' (make test-remote does)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def s3_server():
    port = free_port()
    proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    import boto3

    boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}").create_bucket(Bucket="vila")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


def test_push_clone_pull_status_clean(smoke_dag: Path, tmp_path, s3_server):
    project = tmp_path / "origin"
    shutil.copytree(smoke_dag, project)
    (project / "data" / "star").mkdir(parents=True)
    (project / "data" / "star" / "README.txt").write_text("raw files a team shares through the remote\n")
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "ci@example.com"], ["git", "config", "user.name", "ci"],
                ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"], ["dvc", "add", "-q", "data"],
                ["dvc", "remote", "add", "-d", "team", "s3://vila/store"],
                ["dvc", "remote", "modify", "team", "endpointurl", s3_server],
                ["dvc", "commit", "--force", "-q"]):
        run(cmd, project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "smoke run"], project)
    assert "up to date" in run(["dvc", "status"], project).stdout
    run(["dvc", "push"], project)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    run(["dvc", "pull"], clone)
    assert (clone / "data" / "star" / "README.txt").exists()
    assert (clone / "results" / "synthqa" / "eval" / "vila_4f.json").exists()
    assert "Data and pipelines are up to date" in run(["dvc", "status"], clone).stdout
