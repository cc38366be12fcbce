"""The HTML report of the CI run opens in headless Chromium and its figures render.

The report is a single-page app that shows a result when its menu entry is clicked; headless
Chromium cannot click, so a copy of the report gets one script that, once the page has loaded,
asks the report's own app to show a result (what the click would do). Each screenshot must show
the figure: the content area right of the menu is far from blank and differs from the landing
page. The screenshots are kept in results/report_screenshots/ for a person to look at.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from ci_workflow import ROOT, run_ci_snakemake
from matplotlib import image

pytestmark = pytest.mark.slow

REQUIRE = "PDELDM_REQUIRE_CHROMIUM"  # set by .ci/run, where a missing Chromium is a failure
WINDOW = (1600, 1000)
MENU_WIDTH = 260  # px of the report's left menu at this window size
KEPT = ROOT / "results" / "report_screenshots"
FIGURES = ["metric_boxplots.png", "maps.png", "spectra.png", "calibration.png", "training.png"]
PAGES = ["experiment.html", "data.html"]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    if os.environ.get(REQUIRE):
        pytest.fail(f"{REQUIRE} is set but Chromium is not installed (apt-get install chromium)")
    pytest.skip("headless Chromium not installed (Debian: apt-get install chromium)")


def _show(report_html: str, suffix: str | None) -> str:
    """The report with a script that shows the result whose path ends with ``suffix`` once loaded."""
    if suffix is None:
        return report_html
    script = f"""<script>
window.addEventListener("load", function () {{ setTimeout(function () {{
  var path = Object.keys(results).find(function (p) {{ return p.endsWith({json.dumps(suffix)}); }});
  var content = results[path].mime_type === "text/html" ? "html" : "img";
  app.setView({{content: content, contentPath: results[path].data_uri, resultPath: path}});
}}, 300); }});
</script>"""
    end = report_html.rfind("</body>")
    return report_html[:end] + script + report_html[end:]


def _screenshot(chromium: str, page: Path, out: Path, profile: Path) -> np.ndarray:
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}", "--hide-scrollbars",
               "--virtual-time-budget=15000", f"--screenshot={out}", page.as_uri()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0 and out.is_file(), result.stderr[-3000:]
    return image.imread(out)[..., :3]


def _content(pixels: np.ndarray) -> np.ndarray:
    return pixels[:, MENU_WIDTH:, :]


@pytest.fixture(scope="module")
def screenshots(ci_workflow_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str | None, np.ndarray]:
    chromium = _chromium()
    work = tmp_path_factory.mktemp("report")
    report = work / "report.html"
    built = run_ci_snakemake(ci_workflow_run, "--report", str(report), "--cores", "1")
    assert built.returncode == 0, built.stderr[-3000:]
    html = report.read_text(encoding="utf-8")
    KEPT.mkdir(parents=True, exist_ok=True)
    shots = {}
    for suffix in [None, *FIGURES, *PAGES]:
        name = "landing" if suffix is None else Path(suffix).stem
        page = work / f"show_{name}.html"
        page.write_text(_show(html, suffix), encoding="utf-8")
        shots[suffix] = _screenshot(chromium, page, KEPT / f"{name}.png", work / f"profile_{name}")
    return shots


@pytest.mark.parametrize("figure", FIGURES)
def test_report_figure_renders(screenshots, figure):
    landing, shown = _content(screenshots[None]), _content(screenshots[figure])
    not_white = (shown < 0.95).any(axis=2).mean()
    colours = len(np.unique((shown * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    changed = (np.abs(shown - landing) > 0.1).any(axis=2).mean()
    # A picture, not a blank page or a broken-image icon (line plots are mostly white: 2 % is plenty).
    assert not_white > 0.02 and colours > 100, (figure, not_white, colours)
    assert changed > 0.05, (figure, changed)  # not the landing page
    assert (KEPT / f"{Path(figure).stem}.png").is_file()


@pytest.mark.parametrize("page", PAGES)
def test_report_pages_render(screenshots, page):
    shown = _content(screenshots[page])
    assert (shown < 0.8).any(axis=2).mean() > 0.01, page  # text and table lines, not an empty frame
