"""Write DVC's plots page template with vega, vega-lite and vega-embed inlined, so `dvc plots show/diff`
render offline (DVC's default page loads them from a CDN: offline it is blank).

Usage: offline_plots_template.py UNPACKED_DIR OUT.html. UNPACKED_DIR holds the npm tarballs of the three
packages, unpacked as <name>/package/ (the Makefile fetches them, pinned, with `npm pack`); nothing of
theirs is committed. DVC fills `{plot_divs}` and, with no `{scripts}` placeholder, adds no CDN scripts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BUILDS = {"vega": "build/vega.min.js", "vega-lite": "build/vega-lite.min.js", "vega-embed": "build/vega-embed.min.js"}


def inline_script(name: str, package: Path) -> str:
    version = json.loads((package / "package.json").read_text())["version"]
    code = (package / BUILDS[name]).read_text(encoding="utf-8").replace("</script", "<\\/script")
    return f"<script>/* {name} {version} (npm) */\n{code}\n</script>"


def main(src: str, out: str) -> None:
    scripts = "\n".join(inline_script(name, Path(src) / name / "package") for name in BUILDS)
    page = (f'<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n<title>DVC plots</title>\n{scripts}\n'
            "<style>table{border-spacing:15px}</style>\n</head>\n<body>\n{plot_divs}\n</body>\n</html>\n")
    tmp = Path(out + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)


if __name__ == "__main__":
    main(*sys.argv[1:])
