"""The environment is the one requirements.lock pins: the paper's figures come from exactly those versions.

pyproject.toml keeps ranges (for those who import the package); `make install` and environment.yml install the
lock, and `make lock` refreshes it. These tests catch a .venv that drifted from the lock (a hand
`pip install -U`, a stale stamp), a lock that no longer meets pyproject's ranges, and an environment.yml that
installs something else.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"


def read_lock(path: Path) -> dict[str, Version]:
    """The pins of a lock file by PEP 503 name; a line that is not a plain `name==version` is an error."""
    pins: dict[str, Version] = {}
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        spec = list(req.specifier)
        if len(spec) != 1 or spec[0].operator != "==" or req.url or req.marker or req.extras:
            raise ValueError(f"{path.name}:{n}: not a name==version pin: {raw!r}")
        name = canonicalize_name(req.name)
        if name in pins:
            raise ValueError(f"{path.name}:{n}: {name} pinned twice")
        pins[name] = Version(spec[0].version)
    return pins


def installed() -> dict[str, str]:
    """Installed distributions by PEP 503 name (the first on sys.path wins, as for imports)."""
    out: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            out.setdefault(canonicalize_name(name), dist.version)
    return out


def lock_differences(pins: dict[str, Version], have: dict[str, str]) -> list[str]:
    """`name: lock X, installed Y` for each pin not met; a local label (2.13.0+cpu) does not count."""
    diffs = []
    for name, want in sorted(pins.items()):
        got = have.get(name)
        if got is None or Version(got).public != want.public:
            diffs.append(f"{name}: lock {want}, installed {got or 'nothing'}")
    return diffs


def drift_message(diffs: list[str]) -> str:
    return (
        f"the environment differs from requirements.lock in {len(diffs)} package(s):\n  "
        + "\n  ".join(diffs)
        + "\nrun `make install` (or `make lock` to refresh the lock from pyproject.toml)"
    )


def pyproject_requirements() -> list[Requirement]:
    """What pyproject.toml's `dependencies` and `dev` extra ask for, for this interpreter (markers applied)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]
    return [r for r in reqs if r.marker is None or r.marker.evaluate({"extra": "dev"})]


def test_installed_versions_match_the_lock() -> None:
    diffs = lock_differences(read_lock(LOCK), installed())
    assert not diffs, drift_message(diffs)


def test_a_wrong_pin_is_reported(tmp_path: Path) -> None:
    """The check can fail: a copy of the lock with one wrong pin and one unknown package."""
    have = installed()
    text = LOCK.read_text()
    assert re.search(r"^numpy==", text, re.M)
    wrong = re.sub(r"^numpy==.*$", "numpy==0.0.1", text, flags=re.M) + "not-a-real-dist==1.0\n"
    (tmp_path / "requirements.lock").write_text(wrong)
    diffs = lock_differences(read_lock(tmp_path / "requirements.lock"), have)
    assert diffs == [
        "not-a-real-dist: lock 1.0, installed nothing",
        f"numpy: lock 0.0.1, installed {have['numpy']}",
    ]
    assert "make install" in drift_message(diffs)


def test_local_labels_and_name_spelling_are_ignored(tmp_path: Path) -> None:
    """torch is pinned 2.13.0 and installed as 2.13.0+cpu; names compare in PEP 503 form (PyYAML, pyyaml)."""
    (tmp_path / "lock").write_text("# comment\nTorch==2.13.0\nPyYAML==6.0.2\n")
    pins = read_lock(tmp_path / "lock")
    assert lock_differences(pins, {"torch": "2.13.0+cpu", "pyyaml": "6.0.2"}) == []
    assert lock_differences(pins, {"torch": "2.14.0+cpu", "pyyaml": "6.0.2"}) == [
        "torch: lock 2.13.0, installed 2.14.0+cpu"
    ]


@pytest.mark.parametrize("line", ["numpy>=1.26", "numpy", "numpy==2.0; python_version<'3'", "numpy[x]==2.0"])
def test_lock_lines_must_be_exact_pins(tmp_path: Path, line: str) -> None:
    (tmp_path / "lock").write_text(f"{line}\n")
    with pytest.raises(ValueError, match="not a name==version pin"):
        read_lock(tmp_path / "lock")


def test_lock_is_sorted_and_says_how_to_refresh() -> None:
    lines = LOCK.read_text().splitlines()
    pins = [line for line in lines if line and not line.startswith("#")]
    assert pins == sorted(pins), "requirements.lock is not sorted: refresh it with `make lock`"
    assert any(line.startswith("#") and "make lock" in line for line in lines)


def test_lock_covers_and_satisfies_pyproject() -> None:
    """Every distribution pyproject names is pinned, at a version inside pyproject's range."""
    pins = read_lock(LOCK)
    problems = []
    for req in pyproject_requirements():
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{name}: in pyproject.toml ({req}), not in the lock")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{name}: lock {pins[name]}, pyproject.toml wants {req.specifier}")
    assert not problems, "requirements.lock and pyproject.toml disagree (run `make lock`):\n  " + "\n  ".join(
        problems
    )


def test_environment_yml_installs_the_lock() -> None:
    """conda's pip section: torch at the lock's pin, then the lock, then the project."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert pip == [f"torch=={read_lock(LOCK)['torch']}", "-r requirements.lock", "-e ."]


def test_makefile_installs_the_lock() -> None:
    """make install: the same torch pin as the lock, then the lock, then the project without its dependencies."""
    makefile = (ROOT / "Makefile").read_text()
    assert f"TORCH := torch=={read_lock(LOCK)['torch']}\n" in makefile
    assert "LOCK := requirements.lock\n" in makefile
    recipe = makefile[makefile.index("$(STAMP): pyproject.toml $(LOCK)") :].split("\n\n", 1)[0]
    steps = ["install --quiet $(TORCH)", "-r $(LOCK)", "--no-deps -e .", "pip check"]
    missing = [s for s in steps if s not in recipe]
    assert not missing, f"the $(STAMP) recipe lacks {missing}"
    assert [recipe.index(s) for s in steps] == sorted(recipe.index(s) for s in steps), "steps out of order"
