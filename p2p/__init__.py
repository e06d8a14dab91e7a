"""The authenticated peer layer: WebSocket links between nodes carrying opaque application frames.

Import the public API from here; docs/protocol/p2p.md specifies the wire protocol.
"""

from p2p.counters import METRIC_NAMES
from p2p.errors import (
    FrameError,
    FrameTooLarge,
    HandshakeRefused,
    P2PError,
    PeerNotConnected,
    RefusalCode,
    SendQueueFull,
)
from p2p.identity import PeerDirectory, PeerId, PeerRole, compute_dial_targets, is_dialer
from p2p.network import P2P_PATH, BroadcastTarget, FrameHandler, PeerCallback, PeerNetwork
from p2p.policy import PeerLimits
from p2p.tls import TlsConfig

__all__ = [
    "METRIC_NAMES",
    "P2P_PATH",
    "BroadcastTarget",
    "FrameError",
    "FrameHandler",
    "FrameTooLarge",
    "HandshakeRefused",
    "P2PError",
    "PeerCallback",
    "PeerDirectory",
    "PeerId",
    "PeerLimits",
    "PeerNetwork",
    "PeerNotConnected",
    "PeerRole",
    "RefusalCode",
    "SendQueueFull",
    "TlsConfig",
    "compute_dial_targets",
    "is_dialer",
]
