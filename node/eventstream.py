"""One `/v1/events` WebSocket: optionally replay committed blocks from a height, then stream live events.

The switch from replay to live has no gap and no repeat: the stream subscribes to the EventHub and reads
the chain's height in one step (blocks are applied on the event loop, and a block's commit and its
publication happen without an await in between, so every block above that height reaches the subscription
and none at or below it does). It then replays `from_height .. height` from storage while live events
queue in the subscription (bounded: a consumer too slow to keep up is dropped, as on a live stream), and
finally sends what queued. A consumer that reconnects with `from_height` = the height of the last event it
processed misses nothing (it gets that height's events again: skip what it already has).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from node.events import BlockEvents, EventHub, Subscription
from node.schemas import EventsQuery

REPLAY_YIELD_BLOCKS = 16  # let other requests run between replayed blocks


class EventSource(Protocol):
    events: EventHub

    def get_height(self) -> int:
        """The last committed height."""
        ...

    def get_block_events(self, height: int) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """A committed block's events, as they were published (node.events.compute_block_events)."""
        ...


async def serve_event_stream(socket: web.WebSocketResponse, source: EventSource, query: EventsQuery) -> None:
    """Run a prepared WebSocket until the client leaves or falls behind; the caller closes it."""
    hub = source.events
    subscription = hub.subscribe(org=query.org, tx_ids=query.tx_ids, blocks=query.blocks)
    replay_to = source.get_height()  # same step as subscribe: see the module docstring
    client_gone = asyncio.create_task(_read_until_closed(socket))
    try:
        if query.from_height is not None:
            await _replay(socket, source, subscription, query.from_height, replay_to)
        first_live = max(replay_to + 1, query.from_height or 0)
        await _stream_live(socket, subscription, client_gone, first_live)
    except ConnectionError:
        pass  # the client went away mid-send
    finally:
        hub.unsubscribe(subscription)
        client_gone.cancel()


async def _replay(
    socket: web.WebSocketResponse, source: EventSource, subscription: Subscription, first: int, last: int
) -> None:
    for count, height in enumerate(range(first, last + 1)):
        events = source.get_block_events(height)
        if events is None:  # a gap in storage would be our bug; never skip it silently
            raise ConnectionError(f"block {height} is not stored")
        for item in subscription.select(BlockEvents(*events)):
            await socket.send_str(item.text)
        if count % REPLAY_YIELD_BLOCKS == REPLAY_YIELD_BLOCKS - 1:
            await asyncio.sleep(0)


async def _stream_live(
    socket: web.WebSocketResponse, subscription: Subscription, client_gone: asyncio.Task[None], first: int
) -> None:
    while True:
        if subscription.dropped_reason is not None and subscription.queue.empty():
            await socket.send_json({"type": "dropped", "reason": subscription.dropped_reason})
            return
        if client_gone.done():
            return
        if subscription.queue.empty():
            next_event = asyncio.ensure_future(subscription.queue.get())
            await asyncio.wait({next_event, client_gone}, return_when=asyncio.FIRST_COMPLETED)
            if not next_event.done():
                next_event.cancel()
                return
            event = next_event.result()
        else:  # a block's events queue together: take them without a task and a wait each
            event = subscription.queue.get_nowait()
        if event.height >= first:  # below: a from_height above the tip asked to skip them
            await socket.send_str(event.text)


async def _read_until_closed(socket: web.WebSocketResponse) -> None:
    """Read (and ignore) what the client sends, so close frames and pings are handled."""
    async for message in socket:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break
