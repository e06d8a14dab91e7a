"""EventHub: committed blocks fan out to bounded subscriber queues; a subscriber that falls behind is
dropped with a reason instead of being buffered without bound (docs/RELIABILITY.md item 4)."""

from __future__ import annotations

import json

import orjson
import pytest

from node.events import EventHub

BLOCK = {"type": "block", "height": 1}


def tx_event(index: int, org: str) -> dict[str, object]:
    return {"type": "tx", "tx_id": f"{index:064x}", "index": index, "orgs": {org}}


def test_a_slow_subscriber_is_dropped_with_a_reason_and_the_others_keep_theirs() -> None:
    hub = EventHub(queue_max=3)
    slow, keeping_up = hub.subscribe(), hub.subscribe()
    hub.publish_block(BLOCK, [tx_event(0, "ent-a")])
    assert keeping_up.queue.qsize() == 2
    keeping_up.queue.get_nowait(), keeping_up.queue.get_nowait()
    hub.publish_block(BLOCK, [tx_event(1, "ent-a")])  # slow now holds 4 > 3 events: dropped
    assert slow.dropped_reason == "slow consumer: more than 3 undelivered events"
    assert slow.queue.qsize() == 3  # what it had, no more
    assert keeping_up.dropped_reason is None and keeping_up.queue.qsize() == 2
    assert hub.subscriber_count == 1 and hub.dropped_total == 1


def test_filters_by_organisation_and_transaction_id_without_the_orgs_field() -> None:
    hub = EventHub(queue_max=10)
    ent_b = hub.subscribe(org="ent-b")
    one_tx = hub.subscribe(tx_ids=[f"{0:064x}"])
    hub.publish_block(BLOCK, [tx_event(0, "ent-a"), tx_event(1, "ent-b")])
    block, tx = ent_b.queue.get_nowait(), ent_b.queue.get_nowait()
    assert block.data == BLOCK and tx.data == {"type": "tx", "tx_id": f"{1:064x}", "index": 1}
    assert ent_b.queue.empty()
    assert one_tx.queue.get_nowait().data["index"] == 0 and one_tx.queue.empty()  # no block event either


def test_an_event_is_encoded_once_for_all_its_subscribers(monkeypatch: pytest.MonkeyPatch) -> None:
    encoded: list[object] = []
    dumps = orjson.dumps

    def counting_dumps(value: object) -> bytes:
        encoded.append(value)
        return dumps(value)

    monkeypatch.setattr("node.events.orjson.dumps", counting_dumps)
    hub = EventHub(queue_max=10)
    subscribers = [hub.subscribe(), hub.subscribe(), hub.subscribe(org="ent-a")]
    hub.publish_block(BLOCK, [tx_event(0, "ent-a"), tx_event(1, "ent-b")])
    texts = [[s.queue.get_nowait().text for _ in range(s.queue.qsize())] for s in subscribers]
    assert texts[0] == texts[1] and texts[2] == texts[0][:2]
    assert json.loads(texts[0][2]) == {"type": "tx", "tx_id": f"{1:064x}", "index": 1}
    assert len(encoded) == 3  # the block event and two transaction events, each once
