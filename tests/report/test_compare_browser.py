"""compare.html in headless Chromium: it loads without console messages, every embedded image decodes, all tables render.

Skipped when no chromium / chromium-browser is installed (CI installs Debian's chromium).
"""

from __future__ import annotations

import re

from metricattack.report.compare import write_compare

from metricattack.data.subset import subset_name
from metricattack.report.compare import training_summary

from .test_browser import STICKY_PROBE, load, probe_copy, probe_result, pytestmark, sticky_result  # noqa: F401  (pytestmark: skip without chromium)
from .test_compare import runs, write_record  # noqa: F401  (runs: a fixture)


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


def test_summary_and_training_fit_1280_px_and_wider_tables_keep_their_first_columns(runs, tmp_path):  # noqa: F811
    """A subset run with a long name and training command beside the fixture's: the summary (with its 'measured under'
    column) and the training table wrap into the page; a table still wider keeps what a row is in view."""
    command = "metricattack train --weights runs/default-robust-stage1/model.safetensors --epochs 40 --lr 1e-3 " * 2
    meta = {"defense": {"name": "hm", "eps": 8, "steps": 3, "step_size": 3, "margin": 0.2, "ics_weight": 0.5},
            "train_command": command, "train_seconds": 2915.3, "train_config": {"epochs": 40}}  # fmt: skip
    name = "default-robust-with-a-long-name"
    quick = write_record(tmp_path / "quick", name, 1.0, [], dataset={"name": subset_name("synthetic", 2, 0)},
                         training={name: training_summary(meta)})  # fmt: skip
    page = write_compare([*runs, quick], tmp_path / "out")
    dom, console = load(probe_copy(page, STICKY_PROBE), tmp_path / "profile", width=1280)
    wide, sticky, hidden = sticky_result(dom)
    assert console == [] and "measured under" in dom and command.strip() in dom
    assert "model" not in wide  # neither the summary nor the training table needs a sideways scroll
    assert hidden == 0
