"""Server-rendered SVG bar charts (pure): labelled series in, SVG markup out.

Called by newsletter/admin.py for the operator's status page. No client-side
chart library and no inline style: colours are SVG presentation attributes
(`fill`), which the site's CSP (`style-src 'self'`) does not govern, and the
size comes from the viewBox (the stylesheet makes it as wide as the page).
Every bar carries a <title> naming its day and figures, so a screen reader
(or a mouse hover) gives the numbers the picture shows.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

# The drawing's own units; the browser scales the viewBox to the page width.
WIDTH = 600
HEIGHT = 180
# Room for the value labels on the left and the date labels below.
LEFT = 44
BOTTOM = 20
TOP = 8
# Colour-blind-safe (Okabe-Ito), in series order.
COLOURS = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00")


@dataclass(frozen=True)
class Series:
    """One stacked part of every bar: its name and one value per day (None: no figure)."""

    name: str
    values: Sequence[float | None]


def format_value(value: float) -> str:
    """A figure as a label: whole numbers without decimals, others with one."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def bar_chart(title: str, days: list[str], series: list[Series], unit: str = "") -> Markup:
    """A stacked bar chart, one bar per day, as an <svg> element with a legend.

    A day whose values are all None has an empty bar (its <title> says "no
    figure"), so a missing day shows as a gap, not as zero.
    """
    for part in series:
        if len(part.values) != len(days):
            raise ValueError(f"{part.name}: {len(part.values)} values for {len(days)} days")
    totals = [sum(part.values[i] or 0 for part in series) for i in range(len(days))]
    top = max(totals, default=0) or 1
    plot_width, plot_height = WIDTH - LEFT, HEIGHT - TOP - BOTTOM
    slot = plot_width / max(len(days), 1)
    suffix = f" {unit}" if unit else ""
    out = [
        # No role="img": it would hide the bars' titles from screen readers.
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" class="chart">',
        f"<title>{escape(title)}</title>",
        _axis(top, suffix),
    ]
    for i, day in enumerate(days):
        out.append(_bar(day, series, i, LEFT + i * slot, slot, top, plot_height))
    out.extend(_date_labels(days, slot))
    out.append("</svg>")
    return Markup("".join(out)) + _legend(series)


def _date_labels(days: list[str], slot: float) -> list[str]:
    """The first, middle and last day under the bars (30 labels would not fit a phone)."""
    labels = []
    for i in sorted({0, len(days) // 2, len(days) - 1} if days else set()):
        if i == 0:
            x, anchor = float(LEFT), "start"
        elif i == len(days) - 1:
            x, anchor = float(WIDTH), "end"
        else:
            x, anchor = LEFT + (i + 0.5) * slot, "middle"
        labels.append(
            f'<text x="{x:.1f}" y="{HEIGHT - 5}" font-size="15" text-anchor="{anchor}" '
            f'fill="#444">{escape(days[i])}</text>'
        )
    return labels


def _axis(top: float, suffix: str) -> str:
    """The zero line and the highest total as the scale's one label."""
    base = HEIGHT - BOTTOM
    return (
        f'<line x1="{LEFT}" y1="{base}" x2="{WIDTH}" y2="{base}" stroke="#888" stroke-width="1"/>'
        f'<line x1="{LEFT}" y1="{TOP}" x2="{WIDTH}" y2="{TOP}" stroke="#ddd" stroke-width="1"/>'
        f'<text x="{LEFT - 4}" y="{TOP + 4}" font-size="15" text-anchor="end" fill="#444">'
        f"{escape(format_value(top) + suffix)}</text>"
        f'<text x="{LEFT - 4}" y="{base}" font-size="15" text-anchor="end" fill="#444">0</text>'
    )


def _bar(
    day: str, series: list[Series], i: int, x: float, slot: float, top: float, plot_height: float
) -> str:
    """One day's bar: a group of stacked rectangles under one <title>."""
    values = [part.values[i] for part in series]
    if all(value is None for value in values):
        label = f"{day}: no figure"
    else:
        label = f"{day}: " + ", ".join(
            f"{format_value(value or 0)} {part.name}"
            for part, value in zip(series, values, strict=True)
        )
    parts = [f'<g class="bar"><title>{escape(label)}</title>']
    # An invisible full-height target, so the title shows over an empty or short bar.
    parts.append(
        f'<rect x="{x:.1f}" y="{TOP}" width="{slot:.1f}" height="{plot_height:.1f}" '
        'fill="transparent"/>'
    )
    y = float(HEIGHT - BOTTOM)
    gap = min(2.0, slot * 0.2)
    for n, value in enumerate(values):
        colour = COLOURS[n % len(COLOURS)]
        height = (value or 0) / top * plot_height
        if height > 0:
            y -= height
            parts.append(
                f'<rect x="{x + gap / 2:.1f}" y="{y:.1f}" width="{slot - gap:.1f}" '
                f'height="{height:.1f}" fill="{colour}"/>'
            )
    parts.append("</g>")
    return "".join(parts)


def _legend(series: list[Series]) -> Markup:
    """The series' names with their colours, as an HTML list under the chart."""
    items = [
        Markup(
            '<li><svg width="10" height="10" viewBox="0 0 10 10" aria-hidden="true">'
            '<rect width="10" height="10" fill="{}"/></svg> {}</li>'
        ).format(COLOURS[n % len(COLOURS)], part.name)
        for n, part in enumerate(series)
    ]
    return Markup('<ul class="legend">') + Markup("").join(items) + Markup("</ul>")
