"""Unit tests of the dashboard's pure parts: units, escaping, chart geometry, recent-block walks. (The pages
themselves are tested in a real browser against a real network: test_pages.py.)"""

from __future__ import annotations

from typing import Any, cast

from node.api import QueryNotFound
from node.web.charts import compute_compliance_chart, compute_depth_chart, compute_throughput_chart
from node.web.gov_pages import find_latest_id, list_newest_first
from node.web.recent import WALK_BLOCKS_MAX, RecentBlocks
from node.web.render import NBSP, Renderer, format_bps, format_cny, format_iso, format_price, format_tonnes
from node.web.site import Site
from node.web.valsets import read_validator_history


def test_amounts_carry_their_units_and_never_break_from_them() -> None:
    assert format_tonnes(1050) == f"1,050{NBSP}t"
    assert format_cny(870000) == f"CNY{NBSP}8,700.00"
    assert format_cny(-5) == f"CNY{NBSP}-0.05"
    assert format_price(5050) == f"CNY{NBSP}50.50/t"
    assert [format_bps(b) for b in (500, 1250, 1, 10000, None)] == ["5%", "12.5%", "0.01%", "100%", "-"]
    assert format_iso(1767225600123) == "2026-01-01T00:00:00.123Z"


def test_every_value_is_escaped_even_in_attributes() -> None:
    renderer = Renderer({"chain_id": "c", "node_id": "n", "role": "observer"})
    hostile = '<script>x</script>" onmouseover="y\' &'
    html = renderer.render("error.html", title=hostile, message=hostile, page="x").text
    assert html is not None
    assert "<script>x" not in html and 'onmouseover="y' not in html
    assert "&lt;script&gt;x&lt;/script&gt;&#34; onmouseover=&#34;y&#39; &amp;" in html


def row(org: str, verified: int, allocated: int, allowances: int, offsets: int) -> dict[str, Any]:
    return {
        "org": org,
        "verified_t": verified,
        "allocated_t": allocated,
        "surrendered_allowances_t": allowances,
        "surrendered_offsets_t": offsets,
    }


def test_compliance_chart_has_one_entry_per_enterprise_on_one_scale() -> None:
    chart = compute_compliance_chart([row("a", 1000, 500, 400, 100), row("b", 2000, 2000, 2000, 0)])
    assert [entry.org for entry in chart.entries] == ["a", "b"]
    widths = {(e.org, bar.kind): bar.width for e in chart.entries for bar in e.bars}
    assert widths[("b", "verified")] == 2 * widths[("a", "verified")]
    assert widths[("a", "surrendered")] + widths[("a", "offsets")] == widths[("a", "allocated")]
    offsets = chart.entries[0].bars[3]
    assert offsets.x == chart.entries[0].bars[2].x + chart.entries[0].bars[2].width  # stacked after
    assert compute_compliance_chart([]).entries == ()


def test_depth_chart_steps_outwards_from_the_best_prices() -> None:
    book = {
        "buy": [{"price_fen": 4900, "remaining_t": 10}, {"price_fen": 4800, "remaining_t": 20}],
        "sell": [{"price_fen": 5200, "remaining_t": 30}],
    }
    chart = compute_depth_chart(book)
    assert chart is not None
    assert (chart.low_fen, chart.high_fen, chart.depth_t) == (4760, 5240, 30)  # a tenth of the range beyond
    bids = [tuple(map(float, point.split(","))) for point in chart.bid_points.split()]
    assert bids[0][1] == bids[-1][1] == 192.0  # from the axis at the best bid, back to it at the lowest
    assert min(y for _, y in bids) == 8.0  # 30 t, the deepest side, reaches the top
    assert compute_depth_chart({"buy": [], "sell": []}) is None


def fake_chain(times_ms: list[int], txs: int = 2) -> dict[int, dict[str, Any]]:
    return {
        height: {
            "height": height,
            "hash": f"{height:064x}",
            "header": {"time_ms": time_ms, "tx_count": txs, "proposer": 0},
            "certificate": {"view": 0, "votes": [{"validator": 0}, {"validator": 2}]},
        }
        for height, time_ms in enumerate(times_ms, start=1)
    }


def test_throughput_counts_transactions_per_minute_and_reads_each_block_once() -> None:
    minute = 60_000
    now = 100 * minute + 30_000
    chain = fake_chain([90 * minute, 97 * minute + 1, 99 * minute, 100 * minute, 100 * minute + 5])
    reads: list[int | None] = []

    def get_block_json(height: int | None) -> dict[str, Any] | None:
        reads.append(height)
        return chain.get(height) if height is not None else None

    recent = RecentBlocks(get_block_json)
    throughput = recent.throughput(5, now_ms=now, minutes=5)
    assert [b.txs for b in throughput.buckets] == [0, 2, 0, 2, 4]
    assert throughput.complete and throughput.first_height == 2
    recent.throughput(5, now_ms=now, minutes=5)
    assert sorted(reads) == [1, 2, 3, 4, 5]  # the second walk came from the cache
    assert compute_throughput_chart(throughput).peak == 4
    assert {i: s.height for i, s in recent.last_votes(5, [0, 1, 2, 3]).items()} == {0: 5, 2: 5}


def test_walks_back_from_the_tip_are_bounded() -> None:
    chain = fake_chain([1000 + i for i in range(WALK_BLOCKS_MAX + 50)])
    recent = RecentBlocks(lambda height: chain.get(height) if height is not None else None)
    throughput = recent.throughput(len(chain), now_ms=2000, minutes=10)
    assert not throughput.complete
    assert throughput.first_height == len(chain) - WALK_BLOCKS_MAX + 1


def validator(number: int, org: str) -> dict[str, Any]:
    key = bytes([number + 1]) * 32
    return {"number": number, "org": org, "node_key": key.hex(), "api_address": f"127.0.0.1:{9000 + number}"}


def test_validator_sets_are_read_by_number_from_the_chains_history() -> None:
    genesis = [validator(n, org) for n, org in enumerate(("mee", "bank", "verifier-a", "ent-a"))]
    added = [*genesis, validator(4, "ent-b")]
    removed = [v for v in added if v["number"] != 1]  # {0, 2, 3, 4}: numbers are not positions
    answer = {
        "epoch": 1,
        "history": [
            {"epoch": 0, "first_height": 1, "last_height": 100, "validators": genesis},
            {"epoch": 1, "first_height": 101, "last_height": 200, "validators": added,
             "action": "add_validator", "proposal": 3, "approved_height": 90},
            {"epoch": 2, "first_height": 201, "last_height": None, "validators": removed,
             "action": "remove_validator", "proposal": 5, "approved_height": 180},
        ],
        "pending": {"activation_height": 200, "number": 1},
        "open_proposal": None,
    }  # fmt: skip
    history = read_validator_history(answer, lambda org: org.upper())
    assert history.changed and history.current.epoch == 1
    assert [history.at(h).epoch for h in (1, 100, 101, 200, 201, 10**6)] == [0, 0, 1, 1, 2, 2]
    late = history.at(250)
    assert [v.number for v in late.validators] == [0, 2, 3, 4]
    assert [late.primary(view).number for view in range(5)] == [0, 2, 3, 4, 0]  # the (v mod n)-th member
    assert (late.n, late.quorum, history.at(150).quorum) == (4, 3, 4)
    assert late.member(1) is None and history.at(150).member(1) is not None
    removed_one = history.by_number(1)
    assert removed_one is not None and (removed_one.org, removed_one.org_name) == ("bank", "BANK")
    assert history.orgs_by_number() == {0: "mee", 1: "bank", 2: "verifier-a", 3: "ent-a", 4: "ent-b"}
    assert history.by_number(7) is None


class FakeProposals:
    """The `proposal` and `proposals` queries over proposals 1..count (ids are dense, never deleted)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.reads = 0

    def query(self, name: str, **params: Any) -> Any:
        self.reads += 1
        if name == "proposal":
            if not 1 <= params["proposal"] <= self.count:
                raise QueryNotFound(f"proposal {params['proposal']}")
            return {"id": params["proposal"]}
        after, limit = params["start_after"], params["limit"]
        return {"items": [{"id": i} for i in range(after + 1, min(self.count, after + limit) + 1)]}


def test_the_newest_proposal_is_found_by_galloping_and_pages_go_back_from_it() -> None:
    for count in (0, 1, 2, 3, 5, 8, 100, 1025):
        fake = FakeProposals(count)
        assert find_latest_id(cast(Site, fake), "proposal") == count
        assert fake.reads <= 2 * max(1, count).bit_length() + 2
    fake = FakeProposals(45)
    pages, before = [], None
    while True:
        shown = list_newest_first(cast(Site, fake), "proposals", "proposal", before, 20)
        pages.append([item["id"] for item in shown.items])
        if shown.older is None:
            break
        before = shown.older
    assert pages == [list(range(45, 25, -1)), list(range(25, 5, -1)), list(range(5, 0, -1))]
