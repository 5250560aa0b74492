"""The HTML report reads on any screen and carries what a reader needs to trust it.

The DOM/CSS checks stand in for a browser where none is installed:
``benchmarks/report_screenshots.py`` takes the real screenshots at 1280 and 390 px.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from mlsafety.report import CheckResult, Table, render_report

PHONE_WIDTH = 390


class _Tree(HTMLParser):
    """Records each element with its ancestors (enough to ask "is this table inside a wrapper?")."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, dict[str, str]]] = []
        self.elements: list[tuple[str, dict[str, str], list[tuple[str, dict[str, str]]]]] = []
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        attributes = {k: v or "" for k, v in attrs}
        self.elements.append((tag, attributes, list(self.stack)))
        if tag == "style":
            self._in_style = True
        if tag not in self.VOID:
            self.stack.append((tag, attributes))

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        if self._in_style:
            self.style += data


def _sections() -> list[CheckResult]:
    wide = Table("A wide table", [f"column {i}" for i in range(14)],
                 [[10000.0, 0.28600001335144043, *range(12)], ["a long cell " * 12, None, *range(12)]])
    return [
        CheckResult("accuracy", "Clean accuracy", "pass", "fine", metrics={"n_samples": 10000.0, "accuracy": 0.912},
                    tables=[wide], data_note="all 10,000 images of fashion-mnist."),
        CheckResult("adversarial", "Adversarial robustness", "fail", "robust accuracy 0%",
                    next_step="train with 'mlsafety train --adversarial pgd'.", data_note="500 of 10,000 images."),
        CheckResult("ood", "OOD", "pass", "fine", next_step="not shown for a pass"),
    ]


@pytest.fixture()
def report(tmp_path):
    metadata = {"seed": 3, "quick": True, "model": {"normalisation": {"mean": [0.28600001335144043]}},
                "provenance": {"model file sha256": "f" * 64}, "warnings": []}
    json_path, html_path = render_report(tmp_path, _sections(), metadata, title="test report")
    tree = _Tree()
    tree.feed(html_path.read_text())
    return tree, html_path.read_text(), json.loads(json_path.read_text())


def test_viewport_meta_and_no_fixed_width_wider_than_a_phone(report) -> None:
    tree, _, _ = report
    metas = [a for tag, a, _ in tree.elements if tag == "meta" and a.get("name") == "viewport"]
    assert metas and "width=device-width" in metas[0]["content"]
    # no width, min-width or fixed table layout in CSS or inline styles beyond a phone's width
    styles = tree.style + " ".join(a.get("style", "") for _, a, _ in tree.elements)
    for number, unit in re.findall(r"(?<![-\w])(?:min-)?width:\s*([\d.]+)(px|rem|em)", styles):
        pixels = float(number) * (16 if unit in ("rem", "em") else 1)
        assert pixels <= PHONE_WIDTH, f"a fixed width of {number}{unit} is wider than a {PHONE_WIDTH} px screen"
    assert not [a for tag, a, _ in tree.elements if tag in ("table", "td", "th", "img") and "width" in a]


def test_every_table_scrolls_inside_its_own_box(report) -> None:
    tree, _, _ = report
    tables = [ancestors for tag, _, ancestors in tree.elements if tag == "table"]
    assert len(tables) >= 4
    for ancestors in tables:
        assert ancestors[-1][0] == "div" and "table-wrap" in ancestors[-1][1].get("class", "")
    wrap_rule = re.search(r"\.table-wrap\s*{([^}]*)}", tree.style).group(1)
    assert "overflow-x: auto" in wrap_rule and "max-width: 100%" in wrap_rule
    image_rule = re.search(r"figure img\s*{([^}]*)}", tree.style).group(1)
    assert "max-width: 100%" in image_rule and "height: auto" in image_rule


def test_counts_and_rounding(report) -> None:
    _, html, _ = report
    assert "1e+04" not in html and "10,000" in html
    assert "0.28600001335144043" not in html and "0.286" in html


def test_header_next_steps_data_lines_and_configuration_table(report) -> None:
    _, html, payload = report
    assert "f" * 64 in html and "mlsafety" in payload["metadata"]["provenance"]
    assert payload["metadata"]["provenance"]["seed"] == 3
    assert html.count('class="next-step"') == 1, "a next step shows for the failing section only"
    assert "mlsafety train --adversarial pgd" in html
    assert html.count('class="data-note"') == 2
    assert "<pre>" not in html, "the configuration is a table, not a JSON dump"
    assert "<code>model.normalisation.mean</code>" in html
