"""The HTML report: self-contained, and every table and figure is there in a real browser."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from chainlearn_ray import cli
from chainlearn_ray.results.report import markdown_block, render_report
from chainlearn_ray.results.store import write_json_atomic, write_parquet_atomic
from tests.unit.test_figures import synthetic_results


def _report(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    write_parquet_atomic(synthetic_results(), run / "results.parquet")
    write_json_atomic({"git_revision": "abc123", "chain_id": 131277322940537,
                       "versions": {"torch": "2.x", "ray": "2.60.0"},
                       "config": {"train": {"epochs": 2}}}, run / "manifest.json")
    assert cli.main(["report", str(run), "--n-boot", "200", "--dpi", "60"]) == 0
    return run / "report.html"


def test_markdown_tables_become_escaped_html_tables() -> None:
    text = ("A note <b>.\n\n| Method | p |\n|:--|--:|\n| Ours \\| x | 0.05 |\n\n"
            "_Section skipped: no._")
    out = markdown_block(text)
    assert "<p>A note &lt;b&gt;.</p>" in out
    assert "<th>Method</th><th>p</th>" in out
    assert "<td>Ours | x</td><td class=num>0.05</td>" in out
    assert '<p class="skipped">Section skipped: no.</p>' in out


def test_report_is_one_self_contained_file(tmp_path: Path) -> None:
    page = _report(tmp_path).read_text()
    assert page.count('src="data:image/png;base64,') >= 4  # accuracy, ece, ablation, comm...
    assert "http://" not in page and "https://" not in page  # nothing fetched from outside
    assert "abc123" in page and "131277322940537" in page and "ray" in page
    doc = render_report("t", "s", [("Main", "| a |\n|--|\n| 1 |")], [], None)
    assert "No manifest.json" in doc and "<td>1</td>" in doc


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None or shutil.which("chromedriver") is None,
                    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")
def test_report_renders_every_table_and_figure_in_headless_chromium(tmp_path: Path) -> None:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    report = _report(tmp_path)
    options = webdriver.ChromeOptions()
    options.binary_location = str(_chromium())
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(report.as_uri())
        sections = driver.execute_script(
            "return [...document.querySelectorAll('section.table-section')].map(s => "
            "[s.querySelector('h2').textContent, s.querySelectorAll('table, ul').length, "
            "s.querySelectorAll('p.skipped').length])")
        images = driver.execute_script(
            "return [...document.images].map(i => [i.alt, i.complete, i.naturalWidth])")
        title = driver.title
    finally:
        driver.quit()
    headings = [s[0] for s in sections]
    for expected in ("Main", "Ablations", "Communication", "Paired tests", "Findings",
                     "Weight sensitivity"):
        assert any(h.startswith(expected) for h in headings), headings
    # every section shows a table (or the findings' lists), or says why it was skipped
    assert all(tables > 0 or skipped == 1 for _, tables, skipped in sections)
    assert {alt for alt, _, _ in images} >= {"Accuracy", "Ece", "Ablation", "Communication",
                                             "Sensitivity"}
    assert all(done and width > 200 for _, done, width in images)  # decoded, not broken
    assert "chainlearn results" in title
