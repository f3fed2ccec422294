"""``report.html``: tables per (task, data set) with the best value marked, embedded plots, no link
out, tables only without matplotlib, ``--report-only``, and the page in headless Chromium.

The browser test needs Debian's ``chromium`` + ``chromium-driver`` (as tests/test_web_page.py);
with ``CLIPFORGE_SCREENSHOT=1`` it also writes ``docs/benchmark-report.png`` from the results
folder ``CLIPFORGE_REPORT_RESULTS`` names (default: this test's two hand-made models).
"""

from __future__ import annotations

import json
import os
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_web_page import CHROMIUM, browser  # noqa: F401 - the shared headless-Chromium fixture

from clipforge.cli.main import main
from clipforge.evaluation.report_html import NO_PLOTS, REPORT_NAME, write_report
from clipforge.evaluation.report_plots import PLOT_RENDERERS

DOCS = Path(__file__).resolve().parents[1] / "docs"


def result(model, task, metrics, dataset="builtin:emoji?split=val"):
    return {
        "dataset": dataset,
        "model": model,
        "pretrained": model,
        "task": task,
        "metrics": metrics,
        "language": "en",
        "num_samples": 564,
    }


RESULTS = [
    result("runs/alpha", "zeroshot_classification", {"acc1": 0.25, "acc5": 0.5}),
    result("other/beta", "zeroshot_classification", {"acc1": 0.125, "acc5": 0.75}),
    result(
        "runs/alpha",
        "zeroshot_retrieval",
        {
            "image_retrieval_recall@1": 0.1,
            "text_retrieval_recall@1": 0.2,
            "image_retrieval_recall@5": 0.3,
            "text_retrieval_recall@5": 0.4,
            "modality_gap": 0.9,
        },
    ),
    result(
        "other/beta",
        "zeroshot_retrieval",
        {
            "image_retrieval_recall@1": 0.15,
            "text_retrieval_recall@1": 0.2,
            "image_retrieval_recall@5": 0.35,
            "text_retrieval_recall@5": 0.3,
            "modality_gap": 0.5,
        },
    ),
    result("runs/alpha", "made_up_task", {"score": 3.0}),  # no renderer: a table only
    result("other/beta", "made_up_task", {"score": 2.0}),
]


class Page(HTMLParser):
    """Tables as rows of (text, classes) cells; every src/href; the images."""

    def __init__(self, text):
        super().__init__()
        self.tables, self.links, self.images, self.texts = [], [], [], []
        self._cell = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.links += [attrs[k] for k in ("src", "href") if k in attrs]
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ["", attrs.get("class") or ""]
        elif tag == "img":
            self.images.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(tuple(self._cell))
            self._cell = None

    def handle_data(self, data):
        self.texts.append(data)
        if self._cell is not None:
            self._cell[0] += data


def write_results(folder, results=RESULTS):
    folder.mkdir(parents=True, exist_ok=True)
    for index, data in enumerate(results):
        (folder / f"r{index}.json").write_text(json.dumps(data))
    (folder / "notes.json").write_text('{"not": "a result"}')  # passed over
    return folder


def metric_rows(table):
    return {row[0][0]: tuple(row[1:]) for row in table[1:]}


def test_report_tables_best_values_and_self_contained(tmp_path):
    page = Page(write_report(write_results(tmp_path)).read_text())
    legend, classification, retrieval, unknown = page.tables
    assert [cell[0] for cell in legend[0]] == ["model", "path"]
    assert [row[0][0] for row in legend[1:]] == ["alpha", "beta"]  # short distinct labels
    assert [c[0] for c in classification[0]] == ["metric", "alpha", "beta"]
    rows = metric_rows(classification)
    assert rows["acc1"] == (("25.00", "value best"), ("12.50", "value"))
    assert rows["acc5"] == (("50.00", "value"), ("75.00", "value best"))
    rows = metric_rows(retrieval)
    assert rows["text_retrieval_recall@1"] == (("20.00", "value best"), ("20.00", "value best"))
    assert rows["modality_gap"] == (("0.9000", "value"), ("0.5000", "value best"))  # lower wins
    assert metric_rows(unknown)["score"] == (("3.0000", "value best"), ("2.0000", "value"))
    # classification: one bar chart; retrieval: recall@k curves + bars; made_up_task: none
    assert "made_up_task" not in PLOT_RENDERERS and len(page.images) == 3
    assert all(link.startswith("data:image/png;base64,") for link in page.links)
    assert "made_up_task on builtin:emoji?split=val" in page.texts


def test_report_without_matplotlib_keeps_the_tables(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError
    page = Page(write_report(write_results(tmp_path)).read_text())
    assert len(page.tables) == 4 and page.images == [] and page.links == []
    assert any(NO_PLOTS in text for text in page.texts)


def test_report_only_cli_and_bad_input(tmp_path, capsys):
    folder = write_results(tmp_path / "bench")
    assert main(["benchmark", "--report-only", "--out", str(folder)]) == 0
    assert (folder / REPORT_NAME).is_file()
    assert capsys.readouterr().out.strip() == f"wrote {folder / REPORT_NAME}"
    empty = tmp_path / "empty"
    empty.mkdir()
    for argv, message in (
        (["--report-only", "--out", str(empty)], f"{empty}: no result JSONs to report"),
        (["--report-only", "--out", str(tmp_path / "gone")], "gone: no such results folder"),
        (["--out", str(empty)], "--models is required (unless --report-only)"),
        (["--report-only", "--models", "m", "--out", str(folder)], "leave out --models"),
    ):
        assert main(["benchmark", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in empty.iterdir()) == []


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent")
def test_report_renders_in_chromium(tmp_path, browser):  # noqa: F811 - the imported fixture
    from PIL import Image
    from selenium.webdriver.common.by import By

    given = os.environ.get("CLIPFORGE_REPORT_RESULTS")
    folder = Path(given) if given else write_results(tmp_path / "bench")
    report = write_report(folder, tmp_path / REPORT_NAME)
    browser.set_window_size(1100, 1900)
    browser.get(report.as_uri())
    headers = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "section table th")]
    assert len({h for h in headers[1:3]}) == 2  # two model columns rendered
    images = browser.find_elements(By.TAG_NAME, "img")
    assert images and all(
        browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i) > 0
        for i in images
    )
    shot = tmp_path / "report.png"
    browser.save_screenshot(str(shot))
    pixels = Image.open(shot).convert("RGB")
    colours = pixels.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50  # text, tables and plots, not a blank page
    if os.environ.get("CLIPFORGE_SCREENSHOT") == "1":
        pixels.save(DOCS / "benchmark-report.png", optimize=True)
