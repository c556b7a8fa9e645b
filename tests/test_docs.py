"""The README and the docs: a user's README (short, its results generated), links that resolve, the picture of
the DAG current, and every make target, `vila` command, backticked repository path and `vila.` module they name
real (so a renamed target or module cannot leave a stale line behind)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT
from vila.data.registry import DATASETS, MOMENTS_FILE
from vila.pipeline.stages import STAGES
from vila.reports.readme import BEGIN, END

PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
# Generated or run-time paths a page may name without their existing in a clean checkout (and the hub id of the
# real weights, which the README names as what to download)
GENERATED = ("work", "models", "results", "reports", "logs", "study/seeds/", "study/results/", ".venv", "data/",
             ".vila-runner.lock", "Salesforce/", ".snakemake")
PRODUCTS = {"metrics.json", "speed.json", "stats.json", "skipped.json", "comparisons.json", "decoding.json",
            "checksums.json", "meta.json", "weights.sha256.json"}  # files the stages write (inside the generated folders)
# files a user places: the official annotation files (the registry's), and the weights directory's layout
USER_FILES = {*(f for d in DATASETS.values() for f in d.official_files.values()), MOMENTS_FILE, "map_vid_vidorID.json",
              "qformer_tokenizer"}


def test_the_readme_is_short_and_its_results_block_is_the_generated_one():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) < 250
    assert text.count(BEGIN) == 1 and text.count(END) == 1 and text.index(BEGIN) < text.index(END)


def test_every_file_the_readme_and_docs_link_exists():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#]+)\)", page.read_text()):
            if not target.startswith("http"):
                assert (page.parent / target).exists(), f"{page.name} links {target}, which does not exist"


def test_the_pictured_dag_names_every_stage():
    """docs/pipeline.svg (make pipeline-svg) is Snakemake's rule graph of Table 1: it must show every stage."""
    svg = (ROOT / "docs" / "pipeline.svg").read_text()
    assert {st.name for st in STAGES} <= set(re.findall(r">([a-z_0-9]+)</text>", svg))


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z0-9-]*):", (ROOT / "Makefile").read_text(), re.M))


def named_make_targets(text: str) -> set[str]:
    """`make <target>` as a page names it (in backticks or a code block)."""
    return set(re.findall(r"(?:^|[`\s])make ([a-z][a-z0-9-]*)", text, re.M))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_make_target_a_page_names_exists(page):
    missing = named_make_targets(page.read_text()) - make_targets()
    assert not missing, f"{page.name} names make targets the Makefile lacks: {sorted(missing)}"


def test_the_make_target_check_fails_on_a_missing_target():
    assert named_make_targets("run `make reproduce-everything` first") - make_targets() == {"reproduce-everything"}


def vila_commands() -> set[str]:
    from vila.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return set(sub.choices)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_vila_command_a_page_names_exists(page):
    named = set(re.findall(r"`vila (?:--\S+ \S+ )*([a-z][a-z-]*)", page.read_text()))
    missing = named - vila_commands()
    assert not missing, f"{page.name} names `vila` commands the CLI lacks: {sorted(missing)}"


def backticked_paths(text: str) -> set[str]:
    """Repository paths a page names in backticks: a path with a slash or a file name with a known suffix, without
    placeholders (<...>, {...}, *) or command-line words."""
    out = set()
    for code in re.findall(r"`([^`\n]+)`", text):
        if " " in code or any(c in code for c in "<>{}*$=:"):
            continue
        if "/" in code or re.fullmatch(r"[\w.-]+\.(py|yaml|yml|md|json|ipynb|smk|toml|lock|svg)", code):
            out.add(code.rstrip("/").split("#")[0])
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_backticked_path_a_page_names_exists(page):
    missing = []
    for path in backticked_paths(page.read_text()):
        if path.startswith(GENERATED) or path.startswith(("http", "-")) or path in PRODUCTS | USER_FILES:
            continue
        candidates = [ROOT / path, page.parent / path, *ROOT.glob(f"**/{path}")] if "/" not in path else \
            [ROOT / path, page.parent / path]
        if not any(Path(c).exists() for c in candidates):
            missing.append(path)
    assert not missing, f"{page.name} names paths that do not exist: {sorted(missing)}"


def module_names(text: str) -> set[str]:
    return set(re.findall(r"\bvila(?:\.[a-z_][a-z_0-9]*)+\b", text))


def defined(module_file: Path, name: str) -> bool:
    tree = ast.parse(module_file.read_text())
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            return True
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
    return False


def resolves(dotted: str) -> bool:
    """vila.a.b[.name[.attr]]: the longest prefix that is a module of the package, and the next part defined in it."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:cut])
        module = base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"
        if module.exists():
            rest = parts[cut:]
            return not rest or defined(module, rest[0])
    return False


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_module_a_page_names_exists(page):
    missing = [m for m in module_names(page.read_text()) if not resolves(m)]
    assert not missing, f"{page.name} names vila modules or names that do not exist: {sorted(missing)}"


def test_the_module_check_fails_on_a_removed_name():
    assert resolves("vila.training.loop.plateaued") and resolves("vila.data.synthqa")
    assert not resolves("vila.training.plateaued") and not resolves("vila.selection.rules.no_such_rule")
