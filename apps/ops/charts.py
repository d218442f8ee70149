"""Server-side SVG charts for the ops dashboard: no JavaScript, no CDN, escaped labels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;font-size:11px"
AXIS = "#8a8f98"
GRID = "#e3e6ea"


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    color: str


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str = ""
    color: str = ""


def _html(template: str, *args: object) -> SafeString:
    """format_html with floats rounded to one decimal (it escapes, so no format specs)."""
    return format_html(template, *(f"{a:.1f}" if isinstance(a, float) else a for a in args))


def _nice_max(value: float) -> float:
    """Round an axis maximum up to 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def _svg(width: int, height: int, title: str, body: list[str]) -> SafeString:
    return _html(
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" width="100%" '
        'role="img" aria-label="{}" style="{};max-width:{}px">{}</svg>',
        width,
        height,
        title,
        FONT,
        width,
        mark_safe("".join(body)),  # noqa: S308 - every part below is built with format_html
    )


def stacked_bars(
    *,
    title: str,
    labels: Sequence[str],
    values: Sequence[dict[str, int]],
    series: Sequence[Series],
    label_every: int = 3,
    width: int = 980,
    height: int = 260,
) -> SafeString:
    """Vertical stacked bars, one per label (e.g. per hour), with a y axis and a legend."""
    left, right, top, bottom = 40, 10, 28, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = _nice_max(max((sum(v.values()) for v in values), default=0))
    slot = plot_w / max(len(labels), 1)
    bar_w = max(slot * 0.72, 1.0)
    body: list[str] = []
    # Whole-number ticks for counts: the most intervals (≤ 5) that divide the axis maximum.
    steps = next(n for n in (5, 4, 2, 1) if top_value % n == 0 or top_value < 1)
    for i in range(steps + 1):
        tick = top_value * i / steps
        y = top + plot_h - plot_h * i / steps
        body.append(
            _html(
                '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}"/>'
                '<text x="{}" y="{}" text-anchor="end" fill="{}">{}</text>',
                left,
                y,
                width - right,
                y,
                GRID,
                left - 6,
                y + 4,
                AXIS,
                f"{tick:g}",
            )
        )
    for i, (label, counts) in enumerate(zip(labels, values, strict=True)):
        x = left + slot * i + (slot - bar_w) / 2
        y = top + plot_h
        for s in series:
            n = counts.get(s.key, 0)
            if not n:
                continue
            h = plot_h * n / top_value
            y -= h
            body.append(
                _html(
                    '<rect x="{}" y="{}" width="{}" height="{}" fill="{}">'
                    "<title>{}: {} {}</title></rect>",
                    x,
                    y,
                    bar_w,
                    h,
                    s.color,
                    label,
                    n,
                    s.label,
                )
            )
        # Count labels back from the last bar so the current hour is always labelled.
        if (len(labels) - 1 - i) % label_every == 0:
            body.append(
                _html(
                    '<text x="{}" y="{}" text-anchor="middle" fill="{}">{}</text>',
                    x + bar_w / 2,
                    height - bottom + 16,
                    AXIS,
                    label,
                )
            )
    body.append(_legend(series, x=left, y=14))
    return _svg(width, height, title, body)


def _legend(series: Sequence[Series], *, x: int, y: int) -> str:
    parts = []
    for s in series:
        parts.append(
            _html(
                '<rect x="{}" y="{}" width="10" height="10" rx="2" fill="{}"/>'
                '<text x="{}" y="{}" fill="#333">{}</text>',
                x,
                y - 9,
                s.color,
                x + 14,
                y,
                s.label,
            )
        )
        x += 24 + 7 * len(s.label)
    return "".join(parts)


def horizontal_bars(
    *,
    title: str,
    bars: Sequence[Bar],
    max_value: float | None = None,
    color: str = "#417690",
    width: int = 460,
    row_height: int = 26,
    label_width: int = 120,
) -> SafeString:
    """One labelled horizontal bar per row, the value written at its end."""
    if not bars:
        return _svg(
            width,
            40,
            title,
            [_html('<text x="0" y="24" fill="{}">No data in this window.</text>', AXIS)],
        )
    top_value = max_value if max_value else _nice_max(max(b.value for b in bars))
    plot_w = width - label_width - 70
    height = row_height * len(bars) + 8
    body = []
    for i, bar in enumerate(bars):
        y = 4 + i * row_height
        w = plot_w * min(bar.value / top_value, 1.0) if top_value else 0
        body.append(
            _html(
                '<text x="{}" y="{}" text-anchor="end" fill="#333">{}</text>'
                '<rect x="{}" y="{}" width="{}" height="{}" fill="{}" rx="2"/>'
                '<rect x="{}" y="{}" width="{}" height="{}" fill="{}" rx="2">'
                "<title>{}: {}</title></rect>"
                '<text x="{}" y="{}" fill="#333">{}</text>',
                label_width - 8,
                y + row_height / 2 + 4,
                bar.label,
                label_width,
                y + 4,
                plot_w,
                row_height - 8,
                GRID,
                label_width,
                y + 4,
                w,
                row_height - 8,
                bar.color or color,
                bar.label,
                bar.text or f"{bar.value:g}",
                label_width + plot_w + 6,
                y + row_height / 2 + 4,
                bar.text or f"{bar.value:g}",
            )
        )
    return _svg(width, height, title, body)


def ratio_bar(
    *, title: str, parts: Sequence[Bar], width: int = 460, height: int = 46
) -> SafeString:
    """A single 100 % bar split between parts (e.g. succeeded / failed), with a legend."""
    total = sum(p.value for p in parts)
    body: list[str] = []
    x = 0.0
    if total:
        for p in parts:
            w = width * p.value / total
            if w:
                body.append(
                    _html(
                        '<rect x="{}" y="0" width="{}" height="20" fill="{}">'
                        "<title>{}: {}</title></rect>",
                        x,
                        w,
                        p.color,
                        p.label,
                        p.text or f"{p.value:g}",
                    )
                )
            x += w
    else:
        body.append(_html('<rect x="0" y="0" width="{}" height="20" fill="{}"/>', width, GRID))
    legend = format_html_join(
        "",
        '<rect x="{}" y="30" width="10" height="10" rx="2" fill="{}"/>'
        '<text x="{}" y="39" fill="#333">{}: {}</text>',
        (
            (i * 150, p.color, i * 150 + 14, p.label, p.text or f"{p.value:g}")
            for i, p in enumerate(parts)
        ),
    )
    body.append(legend)
    return _svg(width, height, title, body)
