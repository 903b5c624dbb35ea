"""Small inline SVG charts: stacked horizontal bars and a line chart. No library, no script.

Every label is escaped here: model and stage names come from the user's project.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 720
LABEL_WIDTH = 220
ROW_HEIGHT = 26
LEGEND_HEIGHT = 24
PALETTE = 8  # CSS classes c0..c7 colour the series


@dataclass(frozen=True)
class StackedRow:
    """One bar: a label and its parts, in the order of the chart's kinds."""

    label: str
    parts: Sequence[float]


@dataclass(frozen=True)
class Series:
    """One line of a line chart: (x, y) points in increasing x."""

    label: str
    points: Sequence[tuple[float, float]]


def stacked_bars(rows: Sequence[StackedRow], kinds: Sequence[str], unit: str) -> str:
    """Horizontal bars, one per row, each split into its kinds; the total at its end."""
    if not rows:
        return '<p class="empty">nothing recorded</p>'
    longest = max(sum(row.parts) for row in rows) or 1.0
    room = WIDTH - LABEL_WIDTH - 90
    legend, legend_height = _legend(kinds)
    height = legend_height + ROW_HEIGHT * len(rows)
    shapes = [legend]
    for index, row in enumerate(rows):
        y = legend_height + index * ROW_HEIGHT
        shapes.append(_text(LABEL_WIDTH - 8, y + 17, _shorten(row.label), "end"))
        x = float(LABEL_WIDTH)
        for kind, part in enumerate(row.parts):
            width = room * part / longest
            if width > 0:
                title = f"{row.label}: {kinds[kind]} {_number(part)} {unit}"
                shapes.append(
                    f'<rect class="c{kind % PALETTE}" x="{x:.1f}" y="{y + 4}" width="{width:.1f}"'
                    f' height="{ROW_HEIGHT - 8}"><title>{escape(title)}</title></rect>'
                )
            x += width
        shapes.append(_text(x + 6, y + 17, f"{_number(sum(row.parts))} {unit}"))
    return _svg(height, shapes)


def line_chart(series: Sequence[Series], x_unit: str, y_unit: str) -> str:
    """Lines with a dot at each point, axes from 0 to the largest x and y."""
    points = [point for line in series for point in line.points]
    if not points:
        return '<p class="empty">nothing recorded</p>'
    legend, legend_height = _legend([line.label for line in series])
    left, top, right = 60.0, legend_height + 20.0, WIDTH - 20.0
    bottom = top + 220.0
    max_x = max(x for x, _ in points) or 1.0
    max_y = max(y for _, y in points) or 1.0

    def place(x: float, y: float) -> str:
        return f"{left + (right - left) * x / max_x:.1f},{bottom - (bottom - top) * y / max_y:.1f}"

    shapes = [
        legend,
        f'<path class="axis" d="M{left},{top} V{bottom} H{right}"/>',
        _text(left - 6, top + 4, _number(max_y), "end"),
        _text(left - 6, bottom, "0", "end"),
        _text(right, bottom + 18, f"{_number(max_x)} {x_unit}", "end"),
        _text(left + 6, top + 4, y_unit),
    ]
    for index, line in enumerate(series):
        colour = f"c{index % PALETTE}"
        path = " ".join(place(x, y) for x, y in line.points)
        shapes.append(f'<polyline class="line {colour}" points="{path}"/>')
        for x, y in line.points:
            cx, cy = place(x, y).split(",")
            title = f"{line.label}: {_number(y)} {y_unit} at {_number(x)} {x_unit}"
            shapes.append(
                f'<circle class="{colour}" cx="{cx}" cy="{cy}" r="3">'
                f"<title>{escape(title)}</title></circle>"
            )
    return _svg(bottom + 24, shapes)


def _legend(labels: Sequence[str]) -> tuple[str, float]:
    """The legend's shapes, wrapped to the chart's width, and the height they take."""
    items, x, y = [], 0.0, 4.0
    for index, label in enumerate(labels):
        width = 28 + 7 * min(len(label), 30)
        if x and x + width > WIDTH:
            x, y = 0.0, y + LEGEND_HEIGHT - 4
        items.append(f'<rect class="c{index % PALETTE}" x="{x}" y="{y}" width="12" height="12"/>')
        items.append(_text(x + 16, y + 11, _shorten(label)))
        x += width
    return "".join(items), y + LEGEND_HEIGHT - 4


def _svg(height: float, shapes: Sequence[str]) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height:.0f}" width="{WIDTH}"'
        f' height="{height:.0f}" role="img" xmlns="http://www.w3.org/2000/svg">'
        + "".join(shapes)
        + "</svg>"
    )


def _text(x: float, y: float, text: str, anchor: str = "start") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{escape(text)}</text>'


def _shorten(label: str, most: int = 30) -> str:
    return label if len(label) <= most else label[: most - 1] + "…"


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 or value == int(value) else f"{value:.2f}"
