"""Are this checkout's eval JSONs byte-identical to those a committed dvc.lock recorded?

    python workflow/scripts/eval_identity.py REV      (after `make reproduce`; REV: the commit whose dvc.lock to read)

Reads dvc.lock at REV (git show), takes the md5 of every results/<dataset>/eval/*.json it lists, and compares it
with the file here. Exit status 1 when one differs or is missing.
"""

import hashlib
import subprocess
import sys
from pathlib import Path

import yaml


def recorded(rev: str) -> dict[str, str]:
    shown = subprocess.run(["git", "show", f"{rev}:dvc.lock"], capture_output=True, text=True, check=False)
    if shown.returncode != 0:  # an unknown commit, or one without a dvc.lock: git's own line, after what was asked
        sys.exit(f"make identity REV={rev}: no dvc.lock at that commit here ({' '.join(shown.stderr.split())}); "
                 "name a commit of this clone whose dvc.lock recorded a reproduce (git fetch it first)")
    lock = yaml.safe_load(shown.stdout)
    found = {}
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            if "/eval/" in out["path"] and out["path"].endswith(".json"):
                found[out["path"]] = out["md5"]
    return found


def main() -> int:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    bad = 0
    for path, md5 in sorted(recorded(sys.argv[1]).items()):
        here = Path(path)
        now = hashlib.md5(here.read_bytes()).hexdigest() if here.exists() else None
        same = now == md5
        bad += not same
        print(f"{'identical' if same else 'DIFFERS  '} {path}" + ("" if same else f" ({md5} at {sys.argv[1]}, {now} here)"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
