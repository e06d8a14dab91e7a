"""Chart geometry for the dashboard's server-rendered SVG charts: pure arithmetic, no drawing library.

Each function turns query results into shapes in a fixed viewBox (the SVG scales to the page width); the
templates draw them. Server-side SVG needs no script, obeys the page's Content-Security-Policy (presentation
attributes, classes from the style sheet), prints, and puts every value in the document as text and as a
`<title>` tooltip, so a screen reader and a test read exactly what the chart shows. Coordinates are
integers or halves of them; amounts stay integers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from node.web.recent import Throughput

WIDTH = 640
LABEL_W = 96  # the left column of the compliance chart: the organisation id
VALUE_W = 84  # right margin for the value labels
BAR_H = 12
BAR_GAP = 3
GROUP_GAP = 14


@dataclass(frozen=True, slots=True)
class Bar:
    kind: str  # the CSS class: what the bar measures
    x: float
    y: float
    width: float
    height: float
    value: int
    label: str  # the text beside or under the bar, with its unit
    title: str  # the tooltip: what, whose, how much


@dataclass(frozen=True, slots=True)
class ComplianceEntry:
    org: str
    y: float  # top of the group
    bars: tuple[Bar, ...]


@dataclass(frozen=True, slots=True)
class ComplianceChart:
    width: int
    height: int
    entries: tuple[ComplianceEntry, ...]


def _scale(value: int, maximum: int, span: float) -> float:
    return 0.0 if maximum <= 0 else round(span * value / maximum, 1)


def compute_compliance_chart(rows: Sequence[dict[str, Any]]) -> ComplianceChart:
    """Per enterprise three bars: verified emissions, allocated allowances, and what it surrendered
    (allowances, with the offsets stacked after them)."""
    span = WIDTH - LABEL_W - VALUE_W
    maximum = max(
        (
            max(r["verified_t"], r["allocated_t"], r["surrendered_allowances_t"] + r["surrendered_offsets_t"])
            for r in rows
        ),
        default=0,
    )
    group_h = 3 * BAR_H + 2 * BAR_GAP
    entries = []
    for number, row in enumerate(rows):
        org = str(row["org"])
        top = number * (group_h + GROUP_GAP) + 4
        rows_y = [top + i * (BAR_H + BAR_GAP) for i in range(3)]
        allowances, offsets = row["surrendered_allowances_t"], row["surrendered_offsets_t"]
        allowances_w = _scale(allowances, maximum, span)
        offsets_w = _scale(offsets, maximum, span)
        bars = (
            _bar("verified", rows_y[0], row["verified_t"], maximum, span, f"{org}: verified emissions"),
            _bar("allocated", rows_y[1], row["allocated_t"], maximum, span, f"{org}: allocated allowances"),
            Bar(
                "surrendered",
                LABEL_W,
                rows_y[2],
                allowances_w,
                BAR_H,
                allowances,
                f"{allowances + offsets:,} t",
                f"{org}: surrendered allowances {allowances:,} t",
            ),
            Bar(
                "offsets",
                LABEL_W + allowances_w,
                rows_y[2],
                offsets_w,
                BAR_H,
                offsets,
                "",
                f"{org}: surrendered offsets {offsets:,} t",
            ),
        )
        entries.append(ComplianceEntry(org, top, bars))
    height = len(rows) * (group_h + GROUP_GAP) + 8
    return ComplianceChart(WIDTH, max(height, 40), tuple(entries))


def _bar(kind: str, y: float, value: int, maximum: int, span: float, title: str) -> Bar:
    return Bar(
        kind, LABEL_W, y, _scale(value, maximum, span), BAR_H, value, f"{value:,} t", f"{title} {value:,} t"
    )


@dataclass(frozen=True, slots=True)
class ThroughputChart:
    width: int
    height: int
    plot_h: int
    bars: tuple[Bar, ...]
    peak: int


def compute_throughput_chart(throughput: Throughput) -> ThroughputChart:
    """One column per minute: the transactions committed in blocks of that minute."""
    width, plot_h = WIDTH, 120
    count = max(len(throughput.buckets), 1)
    slot = width / count
    peak = throughput.peak
    bars = []
    for i, bucket in enumerate(throughput.buckets):
        h = _scale(bucket.txs, peak, plot_h - 16)
        minute = f"{bucket.start_ms // 60_000 % 1440 // 60:02d}:{bucket.start_ms // 60_000 % 60:02d}"
        bars.append(
            Bar(
                "throughput",
                round(i * slot + 3, 1),
                round(plot_h - h, 1),
                round(slot - 6, 1),
                h,
                bucket.txs,
                minute,
                f"{minute} UTC: {bucket.txs:,} transactions in {bucket.blocks:,} blocks",
            )
        )
    return ThroughputChart(width, plot_h + 18, plot_h, tuple(bars), peak)


@dataclass(frozen=True, slots=True)
class DepthChart:
    width: int
    height: int
    bid_points: str  # an SVG polygon's points: the cumulative bid quantity, a step per price
    ask_points: str
    low_fen: int
    high_fen: int
    depth_t: int  # the largest cumulative quantity (top of the y axis)


def compute_depth_chart(book: dict[str, Any]) -> DepthChart | None:
    """Cumulative resting quantity against price: bids to the left of the spread, asks to the right."""
    bids = [(int(o["price_fen"]), int(o["remaining_t"])) for o in book.get("buy", [])]
    asks = [(int(o["price_fen"]), int(o["remaining_t"])) for o in book.get("sell", [])]
    if not bids and not asks:
        return None
    prices = [price for price, _ in bids + asks]
    # A tenth of the range beyond the last orders, so the outermost step has a width of its own.
    pad = max((max(prices) - min(prices)) // 10, 1)
    low, high = min(prices) - pad, max(prices) + pad
    depth = max(sum(q for _, q in bids), sum(q for _, q in asks))
    width, height, margin = WIDTH, 200, 8
    plot_w, plot_h = width - 2 * margin, height - 2 * margin

    def x(price: int) -> float:
        return round(margin + plot_w * (price - low) / (high - low), 1)

    def y(quantity: int) -> float:
        return round(margin + plot_h - plot_h * quantity / depth, 1)

    def steps(orders: list[tuple[int, int]], edge: int) -> str:
        """From the best price outwards: up by each order's quantity, then along to the next price."""
        if not orders:
            return ""
        points = [(x(orders[0][0]), y(0))]
        total = 0
        for number, (price, quantity) in enumerate(orders):
            total += quantity
            points.append((x(price), y(total)))
            following = orders[number + 1][0] if number + 1 < len(orders) else edge
            points.append((x(following), y(total)))
        points.append((x(edge), y(0)))
        return " ".join(f"{px},{py}" for px, py in points)

    return DepthChart(width, height, steps(bids, low), steps(asks, high), low, high, depth)
