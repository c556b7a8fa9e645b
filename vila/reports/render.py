"""Rendering: papermill executes one parameterised notebook per report and nbconvert renders it to
self-contained HTML (input cells hidden, images embedded, no external scripts), with a provenance footer.

The notebooks stay thin: the tables and figures are built by the other modules of vila/reports, which read only
the results contracts (results/<dataset>/eval/*.json, speed.json, comparisons.json), the models' metrics and the
decode cache. Entry points of the stages that render: run_reports (`report`), run_seeds (`seeds`, which first
summarises the seed study), run_selection (`selection`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import logging
import platform
import subprocess
from importlib import metadata
from typing import Any

from vila.io import atomic_file, read_json, sha256_file, stable_hash
from vila.paths import PAPER_FIGURES, REPORT_PAGES, REPORTS_DIR, Paths, notebook, report
from vila.reports.common import NA, ROOT_LOCK, split_roles_of

log = logging.getLogger(__name__)




# ---- provenance ----
STAGE_PARAMS = {
    "table1": ["dataset", "seed", "train", "variants", "sevila", "evaluate", "speed"],
    "table2": ["dataset", "seed", "train.teacher", "variants", "evaluate"],
    "speed": ["speed", "variants", "sevila.frames", "train.teacher.frames", "data.frames"],
    "training": ["train", "variants", "sevila", "backbone"],
    "index": ["dataset", "seed", "seeds_study", "train.convergence", "compare"],
    "seeds": ["seed", "seeds_study", "evaluate.split", "compare"],
    "selection": ["selection", "train.convergence", "train.teacher", "compare"],
    "benchmark": ["dataset", "data.synthqa", "evaluate.split", "train.teacher.frames"],
}


def provenance_html(params: dict[str, Any], name: str, paths: Paths) -> str:
    from vila.config import lookup

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
        return out.stdout.strip() if out.returncode == 0 else NA

    commit = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    versions = {p: _version(p) for p in ("torch", "transformers", "peft", "snakemake", "dvc", "papermill", "decord2", "av")}
    lock = ROOT_LOCK.read_text() if ROOT_LOCK.exists() else ""
    versions["requirements.lock"] = hashlib.sha256(lock.encode()).hexdigest()[:12] if lock else NA
    used = {k: lookup(params, k) for k in STAGE_PARAMS.get(name, [])}
    data_hash = sha256_file(paths.stats)[:12] if paths.stats.exists() else NA
    stats = read_json(paths.stats) if paths.stats.exists() else {}
    benchmark = params["dataset"] + (f" v{stats['generator_version']}, test split seed {stats['test_seed']}"
                                     if "generator_version" in stats else "")
    try:
        import torch

        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()})"
        kernels = f"ATen {torch.backends.cpu.get_cpu_capability()}; cpu_isa: {params.get('cpu_isa', NA)}"
    except ImportError:
        device = kernels = NA
    rows = [
        ("git commit", f"{commit}{' (dirty)' if dirty and dirty != NA else ''}"),
        ("params hash", stable_hash(params)),
        ("params this report depends on", f"<code>{html.escape(json.dumps(used, sort_keys=True))}</code>"),
        ("dataset", html.escape(benchmark)),
        ("splits", html.escape("; ".join(f"{k}: {v}" for k, v in split_roles_of(params, stats).items()))),
        ("data hash (dataset stats.json sha256)", data_hash),
        ("frame checksums (sha256)", frame_checksums_html(paths)),
        ("decoders", decoders_html(paths)),
        ("packages", ", ".join(f"{k} {v}" for k, v in versions.items())),
        ("python", platform.python_version()),
        ("device", device),
        ("CPU kernels", kernels),
        ("rendered", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")),
    ]
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<footer class="provenance"><h3>Provenance</h3><table>{body}</table></footer>'


def frame_checksums_html(paths: Paths) -> str:
    """Per split: the rendered frames' checksum (the same on every machine) and the decoded frames' one."""
    stats = read_json(paths.stats) if paths.stats.exists() else {}
    rows = [f"{split}: rendered {c['rendered_frames_sha256'][:16]}, decoded {c['decoded_frames_sha256'][:16]} "
            f"(every clip &ge; {c['min_psnr_db']:.1f} dB PSNR)" for split, c in stats.get("checksums", {}).items()]
    return "<br>".join(rows) or NA


def decoders_html(paths: Paths) -> str:
    """Which decoder served how many clips of each split (preprocess's decoding.json)."""
    path = paths.frames_dir / "decoding.json"
    if not path.exists():
        return NA
    summary = read_json(path)
    counts = "; ".join(f"{split}: decord {c['decord']}, PyAV {c['pyav']}" for split, c in summary["clips"].items())
    return html.escape(f"data.decoder: {summary['decoder']}; {counts}")


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return NA


# ---- rendering ----
STYLE = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:0.6em 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}
img{max-width:100%}
footer.provenance{margin-top:3em;font-size:12px;color:#555}
footer.provenance td,footer.provenance th{text-align:left}
.jp-OutputPrompt,.jp-InputPrompt,.prompt{display:none}
"""


def render_html(notebook: Any, title: str, footer: str) -> str:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="basic", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True, anchor_link_text="")
    body, _ = exporter.from_notebook_node(notebook)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{body}{footer}</body></html>\n")


def run_reports(params: dict[str, Any], params_file: str = "params.yaml") -> None:
    """The `report` stage: the summary page and Table 1's reports."""
    render(REPORT_PAGES, params, params_file)


def run_seeds(params: dict[str, Any], params_file: str = "params.yaml") -> None:
    """The `seeds` stage: the seed study's summary across seeds, then its report."""
    from vila.evaluation import seeds

    seeds.run(params)
    render(("seeds",), params, params_file)


def run_selection(params: dict[str, Any], params_file: str = "params.yaml") -> None:
    """The `selection` stage: the selection study's report."""
    render(("selection",), params, params_file)


def render(names: tuple[str, ...], params: dict[str, Any], params_file: str = "params.yaml") -> None:
    """Render notebooks/<name>.ipynb -> reports/<name>.html from `params` (the notebooks reload them from
    `params_file`, the file `vila --params` named, so what a report shows and what its provenance says come from
    one file)."""
    import nbformat
    import papermill as pm

    paths = Paths.from_params(params)
    for name in names:
        src = notebook(name)
        if not src.exists():
            raise FileNotFoundError(f"{src}: report notebook missing")
        with atomic_file(REPORTS_DIR / f"{name}.executed.ipynb") as executed:
            try:
                pm.execute_notebook(
                    str(src), str(executed), kernel_name="python3", progress_bar=False, log_output=False,
                    parameters={"dataset": params["dataset"],
                                "paper_figures": str(PAPER_FIGURES), "params_file": str(params_file)},
                )
            except pm.PapermillExecutionError as e:  # the cell's own one-line error (our readers name the file)
                raise ValueError(f"{src}: {e.ename}: {' '.join(str(e.evalue).split())}") from None
            nb = nbformat.read(executed, as_version=4)
            title = f"{name}: {params['dataset']}"
            with atomic_file(report(name)) as out:
                out.write_text(render_html(nb, title, provenance_html(params, name, paths)))
        (REPORTS_DIR / f"{name}.executed.ipynb").unlink(missing_ok=True)
        log.info("report: %s", report(name))
