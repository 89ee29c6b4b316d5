"""report.html in headless Chromium: it loads without console messages, with its table and every image.

Skipped when no chromium / chromium-browser is installed (CI installs Debian's chromium).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from metricattack.report.html import build_report

from .test_html import RESULTS, Page, write_run

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(BROWSER is None, reason="chromium is not installed (apt-get install chromium)")
SCREENSHOT = Path(__file__).resolve().parents[2] / "scripts" / "screenshot_report.sh"

# Once the page has loaded, write how many images failed to decode (naturalWidth 0) into a node.
IMAGE_PROBE = """<p id="image-probe">pending</p><script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const broken = images.filter((image) => !image.complete || image.naturalWidth === 0).length;
  document.getElementById("image-probe").textContent = `images=${images.length} broken=${broken}`;
});
</script>"""


# Once the page has loaded, scroll every table that is wider than its box to its right end and count the cells of its
# identifying (sticky) columns that are out of the box or covered, at their left edge, centre or right edge.
STICKY_PROBE = """<p id="sticky-probe">pending</p><script>
window.addEventListener("load", () => {
  const wide = [];
  let cells = 0, hidden = 0;
  for (const box of document.querySelectorAll(".scroll")) {
    if (box.scrollWidth <= box.clientWidth + 1) continue;
    wide.push(box.querySelector("th").textContent);
    box.scrollLeft = box.scrollWidth;
    for (const cell of box.querySelectorAll(".sticky")) {
      cells += 1;
      window.scrollTo(0, window.scrollY + cell.getBoundingClientRect().top - 100);
      const edge = box.getBoundingClientRect(), r = cell.getBoundingClientRect(), y = r.top + r.height / 2;
      const seen = [r.left + 2, r.left + r.width / 2, r.right - 2].every((x) => cell.contains(document.elementFromPoint(x, y)));
      if (r.left < edge.left - 1 || r.right > edge.right + 1 || !seen) hidden += 1;
    }
  }
  document.getElementById("sticky-probe").textContent = `wide=${wide.join("|")} sticky=${cells} hidden=${hidden}`;
});
</script>"""


def load(page: Path, profile: Path, width: int = 800) -> tuple[str, list[str]]:
    """Open ``page`` in headless Chromium ``width`` px wide; return the DOM after load and the console lines it logged."""
    command = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}", f"--window-size={width},1000",
               "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    return done.stdout, console


def probe_copy(report: Path, extra: str = "") -> Path:
    """A copy of the report beside it (so relative paths hold) with the image probe (and ``extra``) injected."""
    copy = report.with_name("report-probe.html")
    copy.write_text(report.read_text().replace("</body>", extra + IMAGE_PROBE + "</body>"))
    return copy


def probe_result(dom: str) -> tuple[int, int]:
    """(images, broken images) as the probe wrote them."""
    found = re.search(r'<p id="image-probe">images=(\d+) broken=(\d+)</p>', dom)
    assert found, "the page never fired its load event"
    return int(found[1]), int(found[2])


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    return build_report(write_run(tmp_path_factory.mktemp("browser") / "run"))


def sticky_result(dom: str) -> tuple[list[str], int, int]:
    """(first header of each table wider than its box, sticky cells, sticky cells out of view) as the probe wrote them."""
    found = re.search(r'<p id="sticky-probe">wide=(.*?) sticky=(\d+) hidden=(\d+)</p>', dom)
    assert found, "the page never fired its load event"
    return [title for title in found[1].split("|") if title], int(found[2]), int(found[3])


def test_report_loads_with_its_table_and_images(report, tmp_path):
    expected_images = len(Page(report.read_text()).images)
    dom, console = load(probe_copy(report), tmp_path / "profile")
    assert console == []
    assert probe_result(dom) == (expected_images, 0)
    assert Page(dom).row_keys == ["clean"] + [row["key"] for row in RESULTS]


def test_the_probe_sees_broken_images_and_script_errors(report, tmp_path):
    """The check above would notice a missing figure and a failing script."""
    broken = '<img src="figures/missing.png" alt="missing"><script>undefinedFunction();</script>'
    dom, console = load(probe_copy(report, broken), tmp_path / "profile")
    assert probe_result(dom)[1] == 1
    assert any("Uncaught ReferenceError" in line for line in console), console


def test_screenshot_script(report, tmp_path):
    out = tmp_path / "report.png"
    subprocess.run(["sh", str(SCREENSHOT), str(report.parent), str(out), "800,1200"], check=True, timeout=120, capture_output=True)
    with Image.open(out) as image:
        assert image.size == (800, 1200)
        assert image.convert("L").getextrema()[0] < 100  # not a blank page


def test_a_row_says_what_it_is_at_either_end_of_the_wide_results_table(report, tmp_path):
    """At 1280 px the results table scrolls sideways; scrolled to its last column, attack, eps, side and goal stay in view."""
    dom, console = load(probe_copy(report, STICKY_PROBE), tmp_path / "profile", width=1280)
    wide, sticky, hidden = sticky_result(dom)
    assert console == [] and wide == ["attack"]  # only the results table is wider than the page
    assert sticky == 4 * (1 + 1 + len(RESULTS)) and hidden == 0  # header, clean row and every result, 4 columns each
