"""Fan-out of committed blocks and transaction results to `/v1/events` subscribers.

Each subscriber has a bounded queue. A subscriber that falls behind is told why and dropped, never buffered
without bound (docs/RELIABILITY.md item 4). Filters: by organisation (transactions it sent or that name it
in an event) and by transaction id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)  # identity semantics: subscriptions live in a set
class Subscription:
    queue_max: int
    org: str | None = None
    tx_ids: frozenset[str] = frozenset()
    blocks: bool = True
    queue: asyncio.Queue[dict[str, Any]] = field(init=False)
    dropped_reason: str | None = None

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(maxsize=self.queue_max)

    def wants_tx(self, event: dict[str, Any]) -> bool:
        if self.tx_ids and event["tx_id"] not in self.tx_ids:
            return False
        return self.org is None or self.org in event["orgs"]


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
        for subscription in list(self._subscriptions):
            items: list[dict[str, Any]] = []
            if subscription.blocks and not subscription.tx_ids:
                items.append(block_event)
            items.extend(
                {k: v for k, v in event.items() if k != "orgs"}
                for event in tx_events
                if subscription.wants_tx(event)
            )
            for item in items:
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
