"""CPU numerics are pinned (params.yaml `cpu_isa`), so the figures are the same bits on every x86-64 machine
of one CPU vendor (MKL's AVX2 branch exists only on Intel CPUs; vila/cpu.py says why that is the pin).

A machine whose kernels compute other bits under the pins fails here, instead of publishing other figures.
The committed fingerprints (one per vendor, tests/data/cpu_fingerprints.json) are the tiny backbone's weights
after 4 pretraining steps (`vila cpu`); they change only when the numerics do (torch, MKL or this code).
"""

from __future__ import annotations

import json
import os

import pytest
import yaml

from tests.conftest import ROOT, repo_params, run
from vila.cpu import INTEL_PINS, PINS, is_x86, pin_cpu, pins_for

FINGERPRINTS: dict[str, str] = json.loads((ROOT / "tests" / "data" / "cpu_fingerprints.json").read_text())
pytestmark = pytest.mark.skipif(not is_x86(), reason="the pins and the fingerprint are for x86-64 CPUs")


def vila_cpu(tmp_path, cpu_isa: str, **env: str) -> dict[str, str]:
    """`vila cpu` in a fresh process whose environment has none of the pins (plus `env`)."""
    params = repo_params()
    params["cpu_isa"] = cpu_isa
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    saved = {k: os.environ.pop(k) for k in [*PINS["avx2"], *INTEL_PINS["avx2"], *env] if k in os.environ}
    os.environ.update(env)
    try:
        return json.loads(run(["vila", "cpu"], tmp_path).stdout)
    finally:
        for k in env:
            os.environ.pop(k, None)
        os.environ.update(saved)


def test_the_pinned_kernels_compute_the_committed_bits(tmp_path):
    got = vila_cpu(tmp_path, "avx2")
    assert got["aten"] == "AVX2" and got["pins"] == pins_for("avx2")
    committed = FINGERPRINTS.get(got["vendor"], {})
    if committed and committed["code"] != got["code"]:
        pytest.skip(f"the committed {got['vendor']} fingerprint was made by other code than this tree's (the "
                    "import closure of vila.training.fingerprint changed since); run `vila cpu` on such a machine and commit it")
    want = committed.get("fingerprint")
    assert got["fingerprint"] == want, (
        f"this machine ({got['vendor']}) computes other bits under cpu_isa: avx2 than the committed ones "
        f"({want or 'none committed for this vendor'}; it gives {got['fingerprint']}): its figures would differ "
        "from the README's. If torch/MKL or the model's numerics changed on purpose, or to publish figures from "
        "this vendor's machines, run `vila cpu` and commit its fingerprint to tests/data/cpu_fingerprints.json")


def test_the_fingerprint_sees_other_kernels(tmp_path):
    """The check can fail: torch's scalar kernels (no pins, ATen capped at 'default') give other weights."""
    got = vila_cpu(tmp_path, "native", ATEN_CPU_CAPABILITY="default")
    assert got["aten"] == "DEFAULT" and got["fingerprint"] not in {f["fingerprint"] for f in FINGERPRINTS.values()}


def test_pins_after_torch_loaded_with_other_kernels_are_refused(monkeypatch):
    """Pins set after torch has dispatched would not apply: an error, not a run with other kernels."""
    import torch  # noqa: F401  (this process loaded torch without the pins)

    for key in PINS["avx2"]:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(RuntimeError, match="torch was imported before the CPU pins"):
        pin_cpu("avx2")
    assert pin_cpu("native") == {}
