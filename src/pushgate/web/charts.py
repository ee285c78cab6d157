"""Activity charts as inline SVG, drawn on the server: no script, no library. Pure.

`bars` draws successes and errors per interval as stacked bars, each with a `<title>` that
says its numbers (what a pointer or a screen reader gets); `sparkline` is the status table's
small version. Colours come from the stylesheet (`.chart-ok`, `.chart-error`).
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup

from pushgate.store.rollup import Interval

# Drawing sizes, in SVG user units (the image scales to its box).
CHART_WIDTH, CHART_HEIGHT, BAR_GAP = 600, 120, 2
SPARK_WIDTH, SPARK_HEIGHT = 96, 20


_BAR = Markup(
    '<g data-start="{}" data-successes="{}" data-errors="{}">{}'
    '<rect class="chart-ok" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}"/>'
    '<rect class="chart-error" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}"/></g>'
)
_CHART = Markup(
    '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}"'
    ' preserveAspectRatio="none">{}</svg>'
)
_SPARK = Markup(
    '<svg class="sparkline" viewBox="0 0 {0} {1}" role="img" aria-label="{2}"'
    ' width="{0}" height="{1}">{3}</svg>'
)


def _stack(
    intervals: Sequence[Interval], width: int, height: int, titles: Sequence[str] | None
) -> Markup:
    peak = max((i.successes + i.errors for i in intervals), default=0) or 1
    step = width / max(len(intervals), 1)
    parts = []
    for index, interval in enumerate(intervals):
        x = index * step
        bar = max(step - BAR_GAP, 1)
        ok_h = interval.successes / peak * height
        err_h = interval.errors / peak * height
        title = Markup("<title>{}</title>").format(titles[index]) if titles else ""
        parts.append(
            _BAR.format(
                interval.start,
                interval.successes,
                interval.errors,
                title,
                *(x, height - ok_h, bar, ok_h),
                *(x, height - ok_h - err_h, bar, err_h),
            )
        )
    return Markup("").join(parts)


def bars(intervals: Sequence[Interval], *, label: str, titles: Sequence[str]) -> Markup:
    """Successes and errors per interval, stacked; `titles` name each interval."""
    body = _stack(intervals, CHART_WIDTH, CHART_HEIGHT, titles)
    return _CHART.format(CHART_WIDTH, CHART_HEIGHT, label, body)


def sparkline(intervals: Sequence[Interval], *, label: str) -> Markup:
    """The small, unlabelled version of `bars` for a table row."""
    body = _stack(intervals, SPARK_WIDTH, SPARK_HEIGHT, None)
    return _SPARK.format(SPARK_WIDTH, SPARK_HEIGHT, label, body)
