"""One self-contained HTML evaluation report: inline CSS, base64 images, hand-drawn inline SVG charts.

Nothing in the page refers to anything outside it, so it can be archived, mailed or opened offline.
"""
from __future__ import annotations

import base64
import math
import os
from dataclasses import dataclass
from html import escape
from typing import Any, Mapping, Sequence

import numpy as np

from synthgen.atomic import atomic_write_bytes
from synthgen.imaging import encode_image, make_grid
from synthgen.metrics.gate import GateCheck, GateVerdict
from synthgen.metrics.memorisation import Memorisation
from synthgen.metrics.specs import CLASS_ACCURACY, CONDITIONAL_ACCURACY
from synthgen.metrics.utility import UtilityPoint

PALETTE = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#0891b2", "#db2777", "#65a30d", "#b45309"]
INK, MUTED, GRID = "#0f172a", "#64748b", "#e2e8f0"
PASS, FAIL = "#15803d", "#b91c1c"
TILE_PX = 48  # gallery tiles are shown at least this large, with pixelated upscaling


@dataclass(frozen=True)
class MetricRow:
    name: str  # e.g. "FD (classifier features)"
    value: float | None  # the generated dataset's value
    baseline: float | None = None  # the same metric for real held-out data, if it has one
    lower_is_better: bool | None = None  # None when neither direction is better
    note: str = ""  # one short line: what it measures or how it was computed


@dataclass(frozen=True)
class FilterClassRow:
    name: str  # the requested class
    acceptance_rate: float | None  # share of the class's attempts the sample filter accepted
    raw_accuracy: float | None  # share of its attempts the filter assigned to the class, before the threshold
    evaluator_accuracy: float | None  # the independent evaluator's accuracy on the published samples of the class


@dataclass(frozen=True)
class NearDuplicatePair:
    generated: np.ndarray  # (H, W, 3) uint8
    train: np.ndarray  # (H, W, 3) uint8, the generated image's nearest training image
    distance: float
    train_index: int
    label: str = ""  # e.g. the requested class name


@dataclass(frozen=True)
class NeighbourDistances:
    real: Sequence[float]  # held-out real images to their nearest training image
    generated: Sequence[float]  # generated images to their nearest training image
    threshold: float  # near-duplicate threshold calibrated on `real`

    @classmethod
    def from_memorisation(cls, memo: Memorisation) -> "NeighbourDistances":
        return cls(memo.real_distances.tolist(), memo.distances.tolist(), memo.threshold)


def worst_near_duplicates(memo: Memorisation, generated: np.ndarray, train: np.ndarray, count: int = 8,
                          labels: Sequence[str] | None = None) -> list[NearDuplicatePair]:
    """The `count` generated images closest to a training image, each with that image, closest first."""
    order = memo.distances.argsort()[:count].tolist()
    return [NearDuplicatePair(generated[i], train[int(memo.indices[i])], float(memo.distances[i]),
                              int(memo.indices[i]), labels[i] if labels is not None else "") for i in order]


# ---------------------------------------------------------------------------------------------
# Formatting and images


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if not math.isfinite(value):
        return str(value)
    return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.4g}"


def png_data_uri(pixels: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(encode_image(np.ascontiguousarray(pixels), "png")).decode()


def img_tag(pixels: np.ndarray, scale: int, alt: str) -> str:
    h, w = pixels.shape[:2]
    return (f'<img src="{png_data_uri(pixels)}" width="{w * scale}" height="{h * scale}" '
            f'alt="{escape(alt)}" class="px">')


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tile_scale(height: int) -> int:
    return max(1, math.ceil(TILE_PX / height))


# ---------------------------------------------------------------------------------------------
# SVG charts


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 x 10^k) spanning [lo, hi]."""
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


class Axes:
    """Maps data to pixels inside a chart's plot area; x may be logarithmic."""

    def __init__(self, width: int, height: int, x_range: tuple[float, float], y_range: tuple[float, float],
                 log_x: bool = False, margin: tuple[int, int, int, int] = (34, 16, 44, 56)):
        self.width, self.height, self.log_x = width, height, log_x
        self.top, self.right, self.bottom, self.left = margin
        self.x_range = tuple(math.log10(v) for v in x_range) if log_x else x_range
        self.y_range = y_range

    def x(self, v: float) -> float:
        lo, hi = self.x_range
        v = math.log10(v) if self.log_x else v
        return self.left + (v - lo) / ((hi - lo) or 1) * (self.width - self.left - self.right)

    def y(self, v: float) -> float:
        lo, hi = self.y_range
        return self.height - self.bottom - (v - lo) / ((hi - lo) or 1) * (self.height - self.top - self.bottom)

    def frame(self, x_ticks: Sequence[float], y_ticks: Sequence[float], x_label: str, y_label: str) -> str:
        parts = []
        for t in y_ticks:
            parts.append(f'<line x1="{self.left}" x2="{self.width - self.right}" y1="{self.y(t):.1f}" '
                         f'y2="{self.y(t):.1f}" stroke="{GRID}"/>')
            parts.append(f'<text x="{self.left - 6}" y="{self.y(t) + 4:.1f}" text-anchor="end">{fmt(t)}</text>')
        base = self.height - self.bottom
        for t in x_ticks:
            parts.append(f'<line x1="{self.x(t):.1f}" x2="{self.x(t):.1f}" y1="{base}" y2="{base + 4}" stroke="{MUTED}"/>')
            parts.append(f'<text x="{self.x(t):.1f}" y="{base + 17}" text-anchor="middle">{fmt(t)}</text>')
        parts.append(f'<line x1="{self.left}" x2="{self.width - self.right}" y1="{base}" y2="{base}" stroke="{MUTED}"/>')
        mid_x, mid_y = (self.left + self.width - self.right) / 2, (self.top + base) / 2
        parts.append(f'<text x="{mid_x:.1f}" y="{self.height - 8}" text-anchor="middle" class="axis">{escape(x_label)}</text>')
        parts.append(f'<text transform="translate(14 {mid_y:.1f}) rotate(-90)" text-anchor="middle" '
                     f'class="axis">{escape(y_label)}</text>')
        return "".join(parts)


def svg(width: int, height: int, body: str, label: str) -> str:
    return (f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-label="{escape(label)}" class="chart">{body}</svg>')


def empty_chart(message: str, width: int = 520, height: int = 80) -> str:
    return svg(width, height, f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">{escape(message)}</text>', message)


def legend(names: Sequence[str], x: float, y: float) -> str:
    """A one-line legend starting at (x, y); entries are spaced by their label length."""
    items = []
    for i, name in enumerate(names):
        items.append(f'<rect x="{x:.1f}" y="{y - 9}" width="10" height="10" rx="2" fill="{PALETTE[i % len(PALETTE)]}"/>'
                     f'<text x="{x + 15:.1f}" y="{y}">{escape(name)}</text>')
        x += 15 + 6.5 * len(name) + 18
    return "".join(items)


def bar_chart(values: Mapping[str, float | None], threshold: float | None, width: int = 520) -> str:
    """Horizontal bars in [0, 1], one per class, with the gate's minimum as a dashed line."""
    row, left, right = 24, 110, 56
    top = 22  # room for the threshold label
    height = top + 26 + row * len(values)

    def scale(v: float) -> float:
        return left + v * (width - left - right)

    parts = []
    for t in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<line x1="{scale(t):.1f}" x2="{scale(t):.1f}" y1="{top - 2}" y2="{height - 22}" stroke="{GRID}"/>'
                     f'<text x="{scale(t):.1f}" y="{height - 8}" text-anchor="middle">{t:.0%}</text>')
    for i, (name, v) in enumerate(values.items()):
        y = top + i * row
        parts.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{escape(shorten(str(name), 16))}</text>')
        if v is None:
            parts.append(f'<text x="{left + 4}" y="{y + 15}" fill="{MUTED}">not requested</text>')
            continue
        color = PASS if threshold is None or v >= threshold else FAIL
        parts.append(f'<rect x="{left}" y="{y + 3}" width="{scale(v) - left:.1f}" height="{row - 7}" rx="3" fill="{color}" opacity="0.85"/>'
                     f'<text x="{scale(v) + 5:.1f}" y="{y + 15}">{v:.1%}</text>')
    if threshold is not None:
        parts.append(f'<line x1="{scale(threshold):.1f}" x2="{scale(threshold):.1f}" y1="{top - 6}" y2="{height - 22}" '
                     f'stroke="{INK}" stroke-dasharray="4 3"/><text x="{scale(threshold):.1f}" y="{top - 10}" '
                     f'text-anchor="middle" fill="{INK}">gate minimum {threshold:.0%}</text>')
    return svg(width, height, "".join(parts), "per-class conditional accuracy")


def histogram(series: Mapping[str, Sequence[float]], threshold: float | None, x_label: str,
              bins: int = 30, width: int = 520, height: int = 260) -> str:
    """Overlaid normalised histograms (share of each series per bin) on shared bins."""
    arrays = {name: np.asarray(v, dtype=float) for name, v in series.items()}
    arrays = {name: a[np.isfinite(a)] for name, a in arrays.items() if np.isfinite(a).any()}
    if not arrays:
        return empty_chart("no finite distances to plot")
    everything = np.concatenate(list(arrays.values()))
    edges = np.histogram_bin_edges(everything, bins=bins)
    shares = {name: np.histogram(v, bins=edges)[0] / len(v) for name, v in arrays.items()}
    x_ticks = nice_ticks(float(edges[0]), float(edges[-1]))
    y_ticks = nice_ticks(0, max(float(s.max()) for s in shares.values()), 4)
    axes = Axes(width, height, (x_ticks[0], x_ticks[-1]), (0, y_ticks[-1]))
    parts = [axes.frame(x_ticks, y_ticks, x_label, "share of samples")]
    for i, share in enumerate(shares.values()):
        points = [(axes.x(edges[0]), axes.y(0))]
        for lo, hi, s in zip(edges[:-1], edges[1:], share):
            points += [(axes.x(lo), axes.y(s)), (axes.x(hi), axes.y(s))]
        points.append((axes.x(edges[-1]), axes.y(0)))
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        color = PALETTE[i % len(PALETTE)]
        parts.append(f'<polygon points="{path}" fill="{color}" fill-opacity="0.18" stroke="{color}" stroke-width="1.5"/>')
    if threshold is not None:
        x = axes.x(threshold)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{axes.top}" y2="{height - axes.bottom}" stroke="{FAIL}" '
                     f'stroke-dasharray="4 3"/><text x="{x + 4:.1f}" y="{axes.top + 10}" fill="{FAIL}">threshold {fmt(threshold)}</text>')
    parts.append(legend(list(shares), axes.left, 14))
    return svg(width, height, "".join(parts), "nearest-neighbour distance histograms")


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], x_label: str, y_label: str,
               width: int = 520, height: int = 260) -> str:
    """One line per sampler; x is logarithmic when the steps span more than a decade."""
    series = {name: [(float(x), float(y)) for x, y in points if math.isfinite(y)] for name, points in series.items()}
    xs = sorted({x for points in series.values() for x, _ in points})
    if not xs:
        return empty_chart("no finite values to plot")
    ys = [y for points in series.values() for _, y in points]
    log_x = xs[0] > 0 and xs[-1] / xs[0] >= 10
    decades = [10.0 ** k for k in range(math.floor(math.log10(xs[0])), math.ceil(math.log10(xs[-1])) + 1)] if log_x else []
    x_ticks = xs if len(xs) <= 8 else decades or nice_ticks(xs[0], xs[-1])
    y_ticks = nice_ticks(min(0.0, min(ys)), max(ys), 4)
    x_range = (xs[0], xs[-1]) if xs[-1] > xs[0] else (xs[0] - 1, xs[0] + 1)
    axes = Axes(width, height, x_range, (y_ticks[0], y_ticks[-1]), log_x=log_x)
    parts = [axes.frame([t for t in x_ticks if x_range[0] <= t <= x_range[1]], y_ticks, x_label, y_label)]
    for i, points in enumerate(series.values()):
        color = PALETTE[i % len(PALETTE)]
        coords = [(axes.x(x), axes.y(y)) for x, y in sorted(points)]
        parts.append(f'<polyline points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in coords)}" fill="none" '
                     f'stroke="{color}" stroke-width="2"/>')
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{color}"/>' for x, y in coords]
    parts.append(legend(list(series), axes.left, 14))
    return svg(width, height, "".join(parts), f"{y_label} against {x_label}")


# ---------------------------------------------------------------------------------------------
# Page sections


def severity(check: GateCheck) -> tuple[bool, float]:
    """Sorts the worst check first: failed before passed, then furthest on the wrong side of its limit."""
    value = check.value if check.value is not None and math.isfinite(check.value) else -math.inf
    return check.passed, value if check.bound == "min" else -value


def check_rows(checks: Sequence[GateCheck]) -> list[tuple[str, GateCheck]]:
    """The verdict table's rows, (name, check): every check, but a per-class metric only by its worst class."""
    rows: dict[str, tuple[str, GateCheck]] = {}
    for check in checks:
        if check.subject is None:
            rows[check.metric] = (check.metric, check)
        elif check.metric not in rows or severity(check) < severity(rows[check.metric][1]):
            rows[check.metric] = (f"{check.metric}, worst: {check.subject}", check)
    return list(rows.values())


def verdict_section(verdict: GateVerdict) -> str:
    cls, word = ("pass", "Published") if verdict.published else ("fail", "Rejected")
    shown = check_rows(verdict.checks)
    failed = sum(not c.passed for _, c in shown)
    summary = (f"All {len(shown)} quality checks passed." if verdict.published
               else f"{failed} of {len(shown)} quality checks failed.")
    reasons = "".join(f"<li>{escape(r)}</li>" for r in verdict.reasons)
    rows = "".join(
        f'<tr><td>{escape(name)}</td><td class="num">{fmt(c.value)}</td>'
        f'<td class="num">{"≥" if c.bound == "min" else "≤"} {fmt(c.limit)}</td>'
        f'<td><span class="pill {"pass" if c.passed else "fail"}">{"pass" if c.passed else "fail"}</span></td></tr>'
        for name, c in shown)
    return (f'<section class="verdict {cls}"><div class="verdict-head"><div class="mark">{"✓" if verdict.published else "✗"}</div>'
            f'<div><div class="verdict-label">Quality gate</div><div class="verdict-word">{word}</div>'
            f'<div class="verdict-summary">{summary}</div></div></div>'
            + (f'<ul class="reasons">{reasons}</ul>' if reasons else "")
            + f'<table class="checks"><thead><tr><th>Check</th><th class="num">Measured</th><th class="num">Limit</th>'
              f'<th></th></tr></thead><tbody>{rows}</tbody></table></section>')


def details_section(details: Mapping[str, Any]) -> str:
    if not details:
        return ""
    items = "".join(f"<div><dt>{escape(str(k))}</dt><dd>{escape(str(v))}</dd></div>" for k, v in details.items())
    return f'<dl class="details">{items}</dl>'


def ratio_cell(row: MetricRow) -> str:
    """value / baseline, only where both are positive (KID, for one, scatters around zero)."""
    if row.value is None or row.baseline is None or not (row.value > 0 and row.baseline > 0):
        return '<td class="num muted">—</td>'
    return f'<td class="num">{row.value / row.baseline:.2f}×</td>'


def metrics_section(rows: Sequence[MetricRow]) -> str:
    arrow = {True: '<span class="muted" title="lower is better">↓</span>',
             False: '<span class="muted" title="higher is better">↑</span>', None: ""}
    body = "".join(
        f'<tr><td>{escape(r.name)} {arrow[r.lower_is_better]}</td><td class="num strong">{fmt(r.value)}</td>'
        f'<td class="num">{fmt(r.baseline)}</td>{ratio_cell(r)}<td class="muted">{escape(r.note)}</td></tr>'
        for r in rows)
    return card("Metrics", '<table class="metrics"><thead><tr><th>Metric</th><th class="num">Generated</th>'
                '<th class="num">Real baseline</th><th class="num">Ratio</th><th>Notes</th></tr></thead>'
                f'<tbody>{body}</tbody></table>', wide=True)


def share(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def filter_section(rows: Sequence[FilterClassRow]) -> str:
    """Per requested class: the filter's acceptance rate and raw accuracy beside the evaluator's accuracy."""
    body = "".join(f'<tr><td>{escape(r.name)}</td><td class="num">{share(r.acceptance_rate)}</td>'
                   f'<td class="num">{share(r.raw_accuracy)}</td><td class="num strong">{share(r.evaluator_accuracy)}</td></tr>'
                   for r in rows)
    return card("Sample filter and evaluator per class",
                '<p class="muted">Filter acceptance is the generator\'s raw quality, the share of its attempts the '
                "sample filter accepted; the evaluator is an independent classifier that scores the published "
                "samples.</p>"
                '<table><thead><tr><th>Requested class</th><th class="num">Filter acceptance</th>'
                '<th class="num">Filter raw accuracy</th><th class="num">Evaluator accuracy</th></tr></thead>'
                f"<tbody>{body}</tbody></table>", wide=True)


def gallery_section(galleries: Mapping[str, np.ndarray], accuracy: Mapping[str, float | None]) -> str:
    cards = []
    for name, pixels in galleries.items():
        per_row = min(len(pixels), 8)
        grid = make_grid(np.asarray(pixels, dtype=np.uint8), per_row, pad=1, fill=255)
        acc = accuracy.get(name)
        badge = f'<span class="muted">{acc:.0%} classified as requested</span>' if acc is not None else ""
        cards.append(f'<figure class="gallery"><figcaption><b>{escape(str(name))}</b>{badge}</figcaption>'
                     f'{img_tag(grid, tile_scale(pixels.shape[1]), f"samples of {name}")}</figure>')
    return card("Samples per class", f'<div class="galleries">{"".join(cards)}</div>', wide=True)


def near_duplicate_section(pairs: Sequence[NearDuplicatePair], threshold: float | None) -> str:
    figures = []
    for p in sorted(pairs, key=lambda p: p.distance):
        scale = tile_scale(p.generated.shape[0])
        flagged = threshold is not None and p.distance <= threshold
        flag = '<span class="pill fail">near-duplicate</span>' if flagged else ""
        figures.append(
            f'<figure class="pair"><div class="pair-imgs"><div>{img_tag(p.generated, scale, "generated")}<span>generated</span></div>'
            f'<div>{img_tag(p.train, scale, "nearest training image")}<span>train #{p.train_index}</span></div></div>'
            f'<figcaption>{escape(p.label + " · " if p.label else "")}d = {fmt(p.distance)} {flag}</figcaption></figure>')
    note = f"Near-duplicate threshold d ≤ {fmt(threshold)}." if threshold is not None else ""
    return card("Closest generated–training pairs",
                f'<p class="muted">Generated images with the smallest distance to any training image. {note}</p>'
                f'<div class="pairs">{"".join(figures)}</div>', wide=True)


def utility_section(points: Sequence[UtilityPoint]) -> str:
    """Real val accuracy against n real training images, without and with the synthetic set, and the gains."""
    chart = line_chart({"real only": [(p.real_count, p.real_accuracy) for p in points],
                        "real + synthetic": [(p.real_count, p.augmented_accuracy) for p in points]},
                       "real training images (n)", "real val accuracy")
    rows = "".join(f'<tr><td class="num">{p.real_count} ({p.fraction:.0%})</td><td class="num">{p.real_accuracy:.3f}</td>'
                   f'<td class="num">{p.augmented_accuracy:.3f}</td>'
                   f'<td class="num strong" style="color:{PASS if p.gain > 0 else FAIL}">{p.gain:+.3f}</td></tr>'
                   for p in points)
    table = ('<table><thead><tr><th class="num">n real</th><th class="num">real only</th>'
             f'<th class="num">+ synthetic</th><th class="num">gain</th></tr></thead><tbody>{rows}</tbody></table>')
    return card("Augmentation utility", f"{chart}{table}")


def card(title: str, body: str, wide: bool = False) -> str:
    return f'<section class="card{" wide" if wide else ""}"><h2>{escape(title)}</h2>{body}</section>'


CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f1f5f9;color:#0f172a;font:14px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1120px;margin:0 auto;padding:32px 24px 48px}
header h1{margin:0;font-size:26px;letter-spacing:-.01em}
header p{margin:4px 0 0;color:#64748b}
.details{display:flex;flex-wrap:wrap;gap:8px 28px;margin:16px 0 0;padding:0}
.details div{min-width:120px}.details dt{font-size:11px;text-transform:uppercase;letter-spacing:.06em;color:#64748b}
.details dd{margin:0;font-weight:600}
.verdict{margin:24px 0;border-radius:12px;padding:22px 26px;border:1px solid;background:#fff}
.verdict.pass{border-color:#86efac;background:linear-gradient(90deg,#f0fdf4,#fff 70%)}
.verdict.fail{border-color:#fca5a5;background:linear-gradient(90deg,#fef2f2,#fff 70%)}
.verdict-head{display:flex;align-items:center;gap:20px}
.mark{width:64px;height:64px;border-radius:50%;display:flex;align-items:center;justify-content:center;font-size:36px;color:#fff;flex:none}
.pass .mark{background:#16a34a}.fail .mark{background:#dc2626}
.verdict-label{font-size:12px;text-transform:uppercase;letter-spacing:.08em;color:#64748b}
.verdict-word{font-size:40px;font-weight:800;line-height:1.1;text-transform:uppercase;letter-spacing:.02em}
.pass .verdict-word{color:#15803d}.fail .verdict-word{color:#b91c1c}
.verdict-summary{color:#334155}
.checks{margin-top:14px;max-width:640px}
.reasons{margin:12px 0 0;padding-left:20px;color:#b91c1c;font-weight:600}
.grid{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:20px}
.card{background:#fff;border:1px solid #e2e8f0;border-radius:12px;padding:18px 20px;box-shadow:0 1px 2px rgba(15,23,42,.04);min-width:0}
.card.wide{grid-column:1/-1}
.card h2{margin:0 0 12px;font-size:15px;font-weight:700}
table{border-collapse:collapse;width:100%}
th{font-size:11px;text-transform:uppercase;letter-spacing:.06em;color:#64748b;font-weight:600;text-align:left;padding:6px 10px;border-bottom:1px solid #e2e8f0}
td{padding:7px 10px;border-bottom:1px solid #f1f5f9;vertical-align:top}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.strong{font-weight:700}.muted{color:#64748b}
.pill{display:inline-block;padding:1px 9px;border-radius:999px;font-size:11px;font-weight:700;text-transform:uppercase;letter-spacing:.04em}
.pill.pass{background:#dcfce7;color:#15803d}.pill.fail{background:#fee2e2;color:#b91c1c}
.chart{max-width:100%;height:auto;font-size:11px;fill:#475569}
.chart .axis{fill:#334155;font-size:12px}
img.px{image-rendering:pixelated;image-rendering:crisp-edges;display:block;border-radius:4px}
.galleries{display:flex;flex-wrap:wrap;gap:20px 32px}
.gallery{margin:0}.gallery figcaption{display:flex;gap:10px;align-items:baseline;margin-bottom:6px}
.pairs{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:14px}
.pair{margin:0;padding:10px;border:1px solid #e2e8f0;border-radius:10px;background:#f8fafc}
.pair-imgs{display:flex;gap:8px}.pair-imgs span{display:block;font-size:11px;color:#64748b;text-align:center}
.pair figcaption{margin-top:6px;font-size:12px}
footer{margin-top:28px;color:#94a3b8;font-size:12px}
"""


def render_report(
    *,
    title: str,
    verdict: GateVerdict,
    metrics: Sequence[MetricRow],
    details: Mapping[str, Any] | None = None,
    galleries: Mapping[str, np.ndarray] | None = None,
    per_class_accuracy: Mapping[str, float | None] | None = None,
    nn_distances: NeighbourDistances | None = None,
    near_duplicates: Sequence[NearDuplicatePair] = (),
    quality_vs_steps: Mapping[str, Sequence[tuple[float, float]]] | None = None,
    quality_label: str = "FD",
    distance_space: str = "classifier features",
    utility: Sequence[UtilityPoint] = (),
    filter_classes: Sequence[FilterClassRow] = (),
) -> str:
    """The whole report as one HTML string; sections whose data is not given are left out.

    galleries: class name -> uint8 (N, H, W, 3) samples; per_class_accuracy: class name -> share;
    quality_vs_steps: sampler name -> [(steps, metric value), ...]; utility: the augmentation utility
    curve; filter_classes: the sample filter's figures per class, when a filter selected the samples.
    The accuracy bars mark the gate's per-class minimum (else its overall minimum); the histograms
    mark the near-duplicate threshold.
    """
    charts = []
    if per_class_accuracy:
        limits = {c.metric: c.limit for c in verdict.checks}
        limit = limits.get(CLASS_ACCURACY.key, limits.get(CONDITIONAL_ACCURACY.key))
        charts.append(card("Conditional accuracy per class", bar_chart(per_class_accuracy, limit)))
    if nn_distances is not None:
        hist = histogram({"real val → train": nn_distances.real, "generated → train": nn_distances.generated},
                         nn_distances.threshold, f"nearest-neighbour distance ({distance_space})")
        charts.append(card("Distance to the nearest training image", hist))
    if quality_vs_steps:
        charts.append(card(f"{quality_label} against sampling steps", line_chart(quality_vs_steps, "sampling steps", quality_label)))
    if utility:
        charts.append(utility_section(utility))
    sections = [metrics_section(metrics), *([filter_section(filter_classes)] if filter_classes else []), *charts]
    if galleries:
        sections.append(gallery_section(galleries, per_class_accuracy or {}))
    if near_duplicates:
        sections.append(near_duplicate_section(near_duplicates, nn_distances.threshold if nn_distances else None))
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head><body><main>'
            f'<header><h1>{escape(title)}</h1><p>Evaluation report of a generated dataset</p>{details_section(details or {})}</header>'
            f'{verdict_section(verdict)}<div class="grid">{"".join(sections)}</div>'
            f'<footer>Self-contained page: every image and chart is embedded.</footer></main></body></html>\n')


def write_report(path: str | os.PathLike, **sections: Any) -> None:
    """Render with `render_report(**sections)` and write the page atomically."""
    atomic_write_bytes(path, render_report(**sections).encode("utf-8"))
