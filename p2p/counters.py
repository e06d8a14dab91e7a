"""The peer layer's counters, exported as `carbonchain_peer_layer_total{counter}` (node/metrics.py)."""

METRIC_NAMES = (
    "frames_in",  # binary messages received on authenticated links
    "frames_out",  # frames written to sockets
    "bytes_in",
    "bytes_out",
    "frames_dropped_queue_full",  # send()/broadcast() refused because a peer's queue was full
    "malformed_frames",  # frames that cost the sender its link
    "handler_errors",  # exceptions raised by the node's handlers
    "bans",  # bans imposed (malformed frames, punish(), repeated handler errors)
    "handshakes_ok",
    "handshakes_failed",
    "inbound_refused",  # inbound connections refused before the handshake (limits, banned, closing)
    "pending_evicted",  # silent pending connections dropped to make room for a newer one
    "connects",  # links that came up
    "disconnects",  # links that went down
)
