"""table1.html in a real headless Chromium: the table is there, every image decodes, no console
errors, nothing requested from the network. A screenshot lands in reports/ as an artefact."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Offline: no background services, no component updates, nothing that would reach out.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.fixture(autouse=True)
def chromium() -> str:
    """Debian's Chromium: CI installs it and sets VILA_REQUIRE_BROWSER, where a missing browser fails the run
    instead of skipping the test (so CI cannot pass without ever opening a report)."""
    if CHROMIUM is None:
        if os.environ.get("VILA_REQUIRE_BROWSER"):
            pytest.fail("VILA_REQUIRE_BROWSER is set but Debian's chromium is not installed (.ci/run installs it)")
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    return CHROMIUM


@contextlib.contextmanager
def offline_page(path: Path) -> Iterator[tuple[Any, list[str], list[str]]]:
    """A page in headless Chromium at `path`, with the console errors and the network requests it makes."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
        page.goto(path.as_uri())
        yield page, errors, requests
        browser.close()


def test_table1_renders_in_chromium(smoke_dag: Path):
    with offline_page(smoke_dag / "reports" / "table1.html") as (page, errors, requests):
        page.wait_for_load_state("load")
        assert page.locator("table").count() >= 2  # Table 1 and the provenance footer
        assert "67.1" in page.locator("table").first.inner_text()
        images = page.evaluate("[...document.images].map(i => [i.complete, i.naturalWidth])")
        assert images and all(complete and width > 0 for complete, width in images)
        (ROOT / "reports").mkdir(exist_ok=True)
        page.screenshot(path=str(ROOT / "reports" / "table1.png"), full_page=True)
    assert errors == []
    assert requests == []


def test_dvc_plots_render_offline(smoke_dag: Path, tmp_path):
    """`dvc plots show` with the project's page template (vega inlined, `make plots-template`): every plot
    draws in Chromium with nothing requested from the network."""
    from tests.conftest import run

    template = ROOT / ".dvc" / "plots-offline.html"
    assert template.exists(), "make install builds .dvc/plots-offline.html"
    project = tmp_path / "p"
    shutil.copytree(smoke_dag, project, ignore=shutil.ignore_patterns(".snakemake"))
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "plots.html_template",
                                                                 "plots-offline.html"]):
        run(cmd, project)
    shutil.copy(template, project / ".dvc" / "plots-offline.html")
    run(["dvc", "plots", "show", "-o", "plots"], project)
    page_path = project / "plots" / "index.html"
    assert "cdn.jsdelivr" not in page_path.read_text()
    with offline_page(page_path) as (page, errors, requests):
        page.wait_for_function("document.querySelectorAll('svg.marks, canvas.marks').length >= 2", timeout=20000)
    assert errors == []
    assert requests == []


def test_the_summary_page_renders_and_links_every_rendered_report(smoke_dag: Path):
    """reports/index.html, the page a reader opens first: its sections, a row per claim, and links that open (the
    smoke DAG rendered every report, the seed and selection studies' too)."""
    import json

    with offline_page(smoke_dag / "reports" / "index.html") as (page, errors, requests):
        page.wait_for_load_state("load")
        text = page.inner_text("body")
        for heading in ("Scope of reproducibility", "Method", "Results", "What was easy", "What was hard",
                        "Deviations from the paper", "Cost in time"):
            assert heading in text, heading
        claims = json.loads((smoke_dag / "results/synthqa/comparisons.json").read_text())["claims"]
        assert claims and all(c["claim"] in text for c in claims)
        links = page.evaluate("[...document.querySelectorAll('a')].map(a => a.getAttribute('href'))")
        assert set(links) >= {"table1.html", "table2.html", "speed.html", "training.html", "seeds.html", "selection.html"}
        assert all((smoke_dag / "reports" / link).exists() for link in links)
    assert errors == []
    assert requests == []
