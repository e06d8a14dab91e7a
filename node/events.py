"""Fan-out of committed blocks and transaction results to `/v1/events` subscribers.

Each subscriber has a bounded queue. A subscriber that falls behind is told why and dropped, never buffered
without bound (docs/RELIABILITY.md item 4). Filters: by organisation (transactions it sent or that name it
in an event) and by transaction id. `compute_block_events` makes a committed block's events, the same for
a block just applied (node/applier.py) and one replayed from storage (node/eventstream.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.block import Block, TxResult
from node.views import to_json_safe

ORG_EVENT_FIELDS = ("org", "from", "to", "buyer", "seller")  # event attributes that name an organisation


def compute_block_events(
    block: Block, results: tuple[TxResult, ...] | list[TxResult], state_root: bytes
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A committed block's event and one event per transaction, each tx event with "orgs": the
    organisations it concerns (the org filter reads it; it is never sent)."""
    header = block.header
    block_event = {
        "type": "block",
        "height": header.height,
        "hash": block.block_hash.hex(),
        "time_ms": header.time_ms,
        "tx_count": header.tx_count,
        "state_root": state_root.hex(),
    }
    tx_events = []
    for index, (tx, result) in enumerate(zip(block.txs, results, strict=True)):
        orgs = {tx.body.sender_org}
        for event in result.events:
            orgs.update(str(v) for k, v in event.items() if k in ORG_EVENT_FIELDS)
        tx_events.append(
            {
                "type": "tx",
                "tx_id": tx.tx_id.hex(),
                "height": header.height,
                "index": index,
                "sender_org": tx.body.sender_org,
                "function": tx.body.function,
                "code": result.code,
                "message": result.message,
                "events": to_json_safe(list(result.events)),
                "orgs": orgs,
            }
        )
    return block_event, tx_events


class StreamEvent:
    """One event as subscribers receive it: its JSON text is made once, on first use, and shared by every
    subscriber and the replay (the data is never changed after publication)."""

    __slots__ = ("_text", "data")

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self._text: str | None = None

    @property
    def height(self) -> int:
        height: int = self.data["height"]
        return height

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = orjson.dumps(self.data).decode()  # compact JSON, ten times faster than json.dumps
        return self._text


class BlockEvents:
    """A committed block's events, prepared once for every subscriber: the block event, and each transaction
    event with the organisations it concerns (the org filter reads them; they are never sent)."""

    __slots__ = ("block", "txs")

    def __init__(self, block_event: dict[str, Any], tx_events: list[dict[str, Any]]) -> None:
        self.block = StreamEvent(block_event)
        # (the event as sent, its tx id, the organisations it concerns)
        self.txs: list[tuple[StreamEvent, str, set[str]]] = []
        for event in tx_events:
            sent = dict(event)  # the caller's event stays as it is
            orgs = sent.pop("orgs")
            self.txs.append((StreamEvent(sent), event["tx_id"], orgs))


@dataclass(eq=False)  # identity semantics: subscriptions live in a set
class Subscription:
    queue_max: int
    org: str | None = None
    tx_ids: frozenset[str] = frozenset()
    blocks: bool = True
    queue: asyncio.Queue[StreamEvent] = field(init=False)
    dropped_reason: str | None = None

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(maxsize=self.queue_max)

    def wants_tx(self, tx_id: str, orgs: set[str]) -> bool:
        if self.tx_ids and tx_id not in self.tx_ids:
            return False
        return self.org is None or self.org in orgs

    def select(self, events: BlockEvents) -> list[StreamEvent]:
        """What this subscriber is sent of one block, in order: the block event (unless filtered out),
        then its matching transaction events."""
        items: list[StreamEvent] = []
        if self.blocks and not self.tx_ids:
            items.append(events.block)
        items.extend(event for event, tx_id, orgs in events.txs if self.wants_tx(tx_id, orgs))
        return items


class EventHub:
    def __init__(self, *, queue_max: int, on_drop: Callable[[], object] = lambda: None) -> None:
        self.queue_max = queue_max
        self._on_drop = on_drop  # counts a dropped subscriber (metrics)
        self._subscriptions: set[Subscription] = set()
        self.dropped_total = 0

    def subscribe(
        self, *, org: str | None = None, tx_ids: Iterable[str] = (), blocks: bool = True
    ) -> Subscription:
        subscription = Subscription(self.queue_max, org, frozenset(tx_ids), blocks)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    def publish_block(self, block_event: dict[str, Any], tx_events: list[dict[str, Any]]) -> None:
        """Deliver one committed block: the block event, then each matching transaction event.

        Every tx event carries "orgs", the organisations it concerns, used by the org filter and then removed.
        """
        events = BlockEvents(block_event, tx_events)
        for subscription in list(self._subscriptions):
            for item in subscription.select(events):
                try:
                    subscription.queue.put_nowait(item)
                except asyncio.QueueFull:
                    self._drop(subscription)
                    break

    def _drop(self, subscription: Subscription) -> None:
        subscription.dropped_reason = f"slow consumer: more than {self.queue_max} undelivered events"
        self._subscriptions.discard(subscription)
        self.dropped_total += 1
        self._on_drop()
