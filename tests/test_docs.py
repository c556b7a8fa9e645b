"""The README and the docs: a user's README (short, its results generated), links that resolve, the picture of
the DAG current."""

from __future__ import annotations

import re

from tests.conftest import ROOT
from vila.pipeline.stages import STAGES
from vila.reports.readme import BEGIN, END


def test_the_readme_is_short_and_its_results_block_is_the_generated_one():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) < 250
    assert text.count(BEGIN) == 1 and text.count(END) == 1 and text.index(BEGIN) < text.index(END)


def test_every_file_the_readme_and_docs_link_exists():
    for page in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))):
        for target in re.findall(r"\]\(([^)#]+)\)", page.read_text()):
            if not target.startswith("http"):
                assert (page.parent / target).exists(), f"{page.name} links {target}, which does not exist"


def test_the_pictured_dag_names_every_stage():
    """docs/pipeline.svg (make pipeline-svg) is Snakemake's rule graph of Table 1: it must show every stage."""
    svg = (ROOT / "docs" / "pipeline.svg").read_text()
    assert {st.name for st in STAGES} <= set(re.findall(r">([a-z_0-9]+)</text>", svg))
