"""The HTML report is one self-contained page: embedded images, inline SVG, nothing fetched."""
from __future__ import annotations

import base64
import re

import numpy as np
import torch

from synthgen.config.evaluate import GateConfig
from synthgen.imaging import decode_image
from synthgen.metrics import evaluate_gate, memorisation
from synthgen.metrics.report import (
    FilterClassRow, MetricRow, NeighbourDistances, nice_ticks, render_report, worst_near_duplicates, write_report,
)

RNG = np.random.default_rng(0)
GATE = GateConfig(min_conditional_accuracy=0.6, max_fd_ratio=4.0, min_cas_ratio=None, min_class_accuracy=None)


def pixels(n: int, size: int = 8) -> np.ndarray:
    return RNG.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def full_report() -> str:
    train, generated, val = pixels(30), pixels(12), pixels(20)
    generated[5] = train[3]
    as_rows = lambda p: torch.from_numpy(p.reshape(len(p), -1)).float()  # noqa: E731
    memo = memorisation(as_rows(generated), as_rows(train), as_rows(val), quantile=0.05)
    verdict = evaluate_gate({"conditional_accuracy": 0.4, "fd_ratio": 1.5, "near_duplicate_fraction": 0.0}, GATE)
    return render_report(
        title="demo <run>",
        verdict=verdict,
        metrics=[MetricRow("FD", 12.5, 6.0, True, "classifier features"), MetricRow("FID", None)],
        details={"dataset": "shapes", "samples": 12},
        galleries={"circle": generated[:6], "<square>": generated[6:]},
        per_class_accuracy={"circle": 0.9, "<square>": None},
        nn_distances=NeighbourDistances.from_memorisation(memo),
        near_duplicates=worst_near_duplicates(memo, generated, train, count=3),
        quality_vs_steps={"ddim": [(10, 30.0), (50, 14.0), (100, 12.0)], "heun": [(10, 20.0), (35, 11.0)]},
    )


def test_report_is_self_contained_with_embedded_images():
    page = full_report()
    assert "http" not in page
    assert "<script" not in page and "<link" not in page and "url(" not in page
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 2 + 2 * 3  # one grid per class, then generated + train per pair
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    first = decode_image(base64.b64decode(sources[0].removeprefix("data:image/png;base64,")))
    assert first.shape == (1 + 8 + 1, 1 + 6 * 9, 3)  # a 1 x 6 grid of 8 px tiles with 1 px padding


def test_report_shows_verdict_charts_and_escapes_names():
    page = full_report()
    assert "Rejected" in page and "1 of 3 quality checks failed." in page
    assert page.count("<svg") == 3  # accuracy bars, distance histograms, quality against steps
    assert "&lt;square&gt;" in page and "<square>" not in page and "demo &lt;run&gt;" in page
    assert "train #3" in page  # the planted copy is shown next to its source


def test_sections_without_data_are_left_out():
    verdict = evaluate_gate({"conditional_accuracy": 0.9, "fd_ratio": 1.0, "near_duplicate_fraction": 0.0}, GATE)
    page = render_report(title="minimal", verdict=verdict, metrics=[MetricRow("FD", 1.0)])
    assert "Published" in page and "<svg" not in page and "<img" not in page and "Sample filter" not in page


def test_write_report_writes_the_rendered_page(tmp_path):
    verdict = evaluate_gate({}, GATE)
    path = tmp_path / "reports" / "report.html"
    write_report(path, title="t", verdict=verdict, metrics=[])
    assert path.read_text(encoding="utf-8") == render_report(title="t", verdict=verdict, metrics=[])
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]


def test_nice_ticks_are_round_and_cover_the_range():
    assert nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    ticks = nice_ticks(3.7, 41.2, 4)
    assert ticks[0] <= 3.7 and ticks[-1] >= 41.2 and ticks == [0, 10, 20, 30, 40, 50]


def test_a_failed_class_is_named_and_per_class_checks_fold_into_their_worst_row():
    from synthgen.metrics.utility import UtilityPoint

    per_class = {"circle": 0.95, "red_square": 0.42, "triangle": 0.9}
    gate = GateConfig(min_conditional_accuracy=0.6, max_fd_ratio=4.0, min_class_accuracy=0.85, min_cas_ratio=None)
    verdict = evaluate_gate({"conditional_accuracy": 0.8, "fd_ratio": 1.0, "near_duplicate_fraction": 0.0,
                             "conditional_accuracy_per_class": per_class}, gate)
    utility = [UtilityPoint(0.05, 12, 0.5, 0.62), UtilityPoint(1.0, 240, 0.97, 0.95)]
    page = render_report(title="t", verdict=verdict, metrics=[], per_class_accuracy=per_class, utility=utility)
    assert "class red_square: conditional_accuracy_per_class = 0.42 fails: must be &gt;= 0.85" in page
    assert "conditional_accuracy_per_class, worst: red_square" in page and "1 of 4 quality checks failed." in page
    assert "gate minimum 85%" in page  # the bars mark the per-class limit, not the overall one
    assert page.count("<svg") == 2 and "Augmentation utility" in page and "+0.120" in page and "-0.020" in page


def test_the_filter_table_puts_its_acceptance_beside_the_independent_evaluator():
    from synthgen.evaluation.report import filter_rows

    metrics = {"filter_acceptance_rate_per_class": {"circle": 0.8, "<square>": 0.5, "triangle": None},
               "filter_raw_accuracy_per_class": {"circle": 0.9, "<square>": 0.55, "triangle": None}}
    per_class = {"circle": {"accuracy": 0.97}, "<square>": {"accuracy": 0.875}, "triangle": {"accuracy": None}}
    rows = filter_rows(metrics, per_class)
    assert rows[1] == FilterClassRow("<square>", 0.5, 0.55, 0.875) and filter_rows({}, per_class) == []
    verdict = evaluate_gate({"conditional_accuracy": 0.9, "fd_ratio": 1.0, "near_duplicate_fraction": 0.0}, GATE)
    page = render_report(title="t", verdict=verdict, metrics=[], filter_classes=rows)
    assert "Sample filter and evaluator per class" in page and "independent classifier" in page
    assert ('<td>&lt;square&gt;</td><td class="num">50.0%</td><td class="num">55.0%</td>'
            '<td class="num strong">87.5%</td>') in page
    assert '<td>triangle</td><td class="num">—</td><td class="num">—</td><td class="num strong">—</td>' in page
