"""The pages people open (index.html, a run's report.html) in real headless Chromium, offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import Chromium, chromium_path
from tests.helpers import REPO

ARTIFACTS = REPO / "tests" / "artifacts"  # screenshots, kept by CI (gitignored)


@pytest.fixture(scope="module")
def browser():
    binary = chromium_path()
    if binary is None:
        pytest.skip(
            "no chromium on PATH: install Debian's chromium package "
            "(apt-get install chromium; .ci/run does)"
        )
    with Chromium(binary) as chromium:
        yield chromium


def check(visit, name: str, images: int) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{name}.png").write_bytes(visit.screenshot)
    assert visit.screenshot.startswith(b"\x89PNG")
    assert len(visit.images) == images, visit.images
    broken = [i for i in visit.images if not i["complete"] or i["naturalWidth"] <= 0]
    assert not broken, f"images that did not render: {broken}"
    leaving = [u for u in visit.requests if not u.startswith(("file://", "data:"))]
    assert not leaving, f"requests that left the page: {leaving}"
    assert visit.requests and visit.requests[0] == visit.url
    assert not visit.errors, f"console errors: {visit.errors}"


def test_index_html_renders_offline(browser, scored_output):
    out: Path = scored_output["output"]
    visit = browser.visit(out / "index.html")
    check(visit, "index", images=5)  # rows, reject share, mean prediction, MSE, band coverage
    assert visit.title == "Scoring run history"
    for summary in scored_output["summaries"]:
        if summary.get("run_id"):
            assert summary["run_id"] in visit.text


def test_report_html_of_a_run_renders_offline(browser, scored_output):
    out: Path = scored_output["output"]
    latest = (out / "LATEST").read_text().strip()
    visit = browser.visit(out / "runs" / latest / "report.html")
    check(visit, "report", images=2)  # loss.png and fit.png
    assert latest in visit.title


# Horizontal overflow, and numbers (cells of class n or t, run ids) that wrap onto a second line.
FIT = """(() => {
  const wrapped = [...document.querySelectorAll('td.n, td.t, td code')].filter(el => {
    const range = document.createRange();
    range.selectNodeContents(el);
    return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size > 1;
  }).map(el => el.textContent);
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
          cells: document.querySelectorAll('td.n').length, wrapped};
})()"""


def test_index_html_fits_1280_pixels_without_scrolling_sideways(browser, scored_output):
    out: Path = scored_output["output"]
    visit = browser.visit(out / "index.html", viewport=(1280, 800), probe=FIT)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "index-1280.png").write_bytes(visit.screenshot)
    fit = visit.probe
    assert fit["innerWidth"] == 1280 and fit["cells"] > 0
    assert fit["scrollWidth"] <= fit["innerWidth"], fit
    assert not fit["wrapped"], f"numbers wrapped onto two lines: {fit['wrapped']}"


def test_index_html_with_backfill_days_and_a_shadow_still_fits_1280_pixels(
    browser, models, tmp_path
):
    """Days (for ...), superseded runs and a challenger's cell add lines, never width."""
    import shutil

    from jobs.score import main
    from tests.helpers import run_main

    for day in ("2026-11-01", "2026-11-02"):
        (tmp_path / "in" / day).mkdir(parents=True)
        shutil.copy(REPO / "sample_inputs" / "suburbs_north.csv", tmp_path / "in" / day)
    out = tmp_path / "out"
    base = ["--models-dir", models, "--output-dir", out, "--input", tmp_path / "in" / "{date}"]
    for extra in ([], ["--force"], ["--force", "--challenger", "production"]):
        res = run_main(main, [*base, "--backfill", "2026-11-01..2026-11-02", *extra])
        assert res.code == 0, res.stderr[-3000:]
    visit = browser.visit(out / "index.html", viewport=(1280, 800), probe=FIT)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "index-backfill-1280.png").write_bytes(visit.screenshot)
    fit = visit.probe
    assert fit["scrollWidth"] <= fit["innerWidth"], fit
    assert not fit["wrapped"], f"numbers wrapped onto two lines: {fit['wrapped']}"
    assert visit.text.count("for 2026-11-01") == 3 and "superseded by" in visit.text
    assert "shadow v1" in visit.text
