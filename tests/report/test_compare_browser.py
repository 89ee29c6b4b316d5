"""compare.html in headless Chromium: it loads without console messages, every embedded image decodes, all tables render.

Skipped when no chromium / chromium-browser is installed (CI installs Debian's chromium).
"""

from __future__ import annotations

import re

from metricattack.report.compare import write_compare

from .test_browser import load, probe_copy, probe_result, pytestmark  # noqa: F401  (pytestmark: skip without chromium)
from .test_compare import runs  # noqa: F401  (fixture)


def test_compare_page_loads_with_its_tables_and_figure(runs, tmp_path):  # noqa: F811
    page = write_compare(runs, tmp_path / "out")
    dom, console = load(probe_copy(page), tmp_path / "profile")
    assert console == []
    assert probe_result(dom) == (1, 0)  # the curves, embedded as a data URI, decode
    assert len(re.findall(r"<table>", dom)) >= 6  # runs, summary, every setting, training, sanity: all models + per model
    assert "gradient masking" in dom and "robust / clean" in dom


def test_report_with_sanity_checks_loads_and_shows_the_warning(tmp_path):
    from metricattack.report.html import build_report

    from .test_compare import SANITY
    from .test_html import write_run

    report = build_report(write_run(tmp_path / "run", sanity=SANITY))
    dom, console = load(probe_copy(report), tmp_path / "profile")
    assert console == [] and probe_result(dom)[1] == 0
    assert "<h2>Sanity checks</h2>" in dom and 'class="warning"' in dom and "gradient masking" in dom
