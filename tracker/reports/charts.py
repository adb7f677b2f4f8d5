"""Server-rendered charts: the geometry of a stacked bar chart, for an inline SVG (pure).

No client library and no inline style: the template draws `<rect>`s from the numbers
computed here with SVG presentation attributes (x, y, width, height) and colours them
with CSS classes, so the chart works under a strict CSP and without JavaScript. The
same figures go into a table beside the chart, for screen readers and for copying.
"""

import math
from dataclasses import dataclass, field

WIDTH = 720
HEIGHT = 260
# Room for the axis labels around the plot area.
MARGIN_LEFT = 44
MARGIN_RIGHT = 8
MARGIN_TOP = 10
MARGIN_BOTTOM = 28
# The most x-axis labels that fit side by side (about 60 px each).
MAX_X_LABELS = 11


@dataclass(frozen=True)
class Segment:
    """One series' part of a bar: its value and its rectangle."""

    series: str
    value: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Bar:
    """One bin (a day, a week or a month): its stacked segments, bottom first."""

    index: int
    key: object
    label: str
    total: int
    x: float
    width: float
    center: float
    top: float
    segments: list = field(default_factory=list)


@dataclass(frozen=True)
class Tick:
    value: int
    y: float


@dataclass(frozen=True)
class XLabel:
    text: str
    x: float


@dataclass(frozen=True)
class Chart:
    """All a template needs to draw the chart: the canvas, the plot area, ticks and bars."""

    width: int
    height: int
    left: float
    top: float
    right: float
    bottom: float
    ticks: list
    bars: list
    x_labels: list
    maximum: int

    @property
    def empty(self):
        return self.maximum == 0

    @property
    def view_box(self):
        return f"0 0 {self.width} {self.height}"


def nice_step(maximum, count=4):
    """A round step (1, 2 or 5 times a power of ten, at least 1) giving about `count` ticks."""
    if maximum <= count:
        return 1
    raw = maximum / count
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return int(factor * power)
    return int(10 * power)  # pragma: no cover - the loop always returns


def ticks_for(maximum, count=4):
    """The y-axis values 0, step, 2*step... up to the first one at or above maximum."""
    step = nice_step(maximum, count)
    top = max(step, step * math.ceil(maximum / step))
    return list(range(0, top + 1, step))


def _round(value):
    return round(value, 2)


def stacked_bars(bins, series, values, width=WIDTH, height=HEIGHT):
    """The geometry of a stacked bar chart.

    bins: [(key, label)] in order along the x axis; series: the series keys, bottom
    first; values: {key: {series: count}} (missing means 0).
    """
    left, right = MARGIN_LEFT, width - MARGIN_RIGHT
    top, bottom = MARGIN_TOP, height - MARGIN_BOTTOM
    totals = [sum(values.get(key, {}).get(s, 0) for s in series) for key, _label in bins]
    maximum = max(totals, default=0)
    ticks = ticks_for(maximum)
    scale = (bottom - top) / ticks[-1]

    slot = (right - left) / max(len(bins), 1)
    bar_width = max(min(slot * 0.72, 48.0), 1.0)
    bars = []
    for index, ((key, label), total) in enumerate(zip(bins, totals)):
        x = left + slot * index + (slot - bar_width) / 2
        base = float(bottom)
        segments = []
        for name in series:
            value = values.get(key, {}).get(name, 0)
            if not value:
                continue
            h = value * scale
            segments.append(Segment(name, value, _round(x), _round(base - h),
                                    _round(bar_width), _round(h)))
            base -= h
        bars.append(Bar(index, key, label, total, _round(x), _round(bar_width),
                        _round(left + slot * (index + 0.5)), _round(base), segments))

    every = max(1, math.ceil(len(bins) / MAX_X_LABELS))
    x_labels = [XLabel(bar.label, bar.center) for bar in bars if bar.index % every == 0]
    return Chart(
        width=width, height=height, left=left, top=top, right=right, bottom=bottom,
        ticks=[Tick(value, _round(bottom - value * scale)) for value in ticks],
        bars=bars, x_labels=x_labels, maximum=maximum,
    )
