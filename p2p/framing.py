"""Application frames: what travels over an authenticated link, and how it is checked.

After the handshake every WebSocket message is one binary message holding the canonical msgpack encoding
(core.codec) of a two-element array `[channel, payload]`: `channel` a short lowercase name chosen by the node
(e.g. "consensus", "tx", "blocks"), `payload` opaque bytes the peer layer never looks into. Anything else (a
text message, bytes that are not canonical msgpack, a wrong shape, an oversized message, a channel nobody
registered) is a malformed frame and costs the sender its connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core import codec
from core.errors import CodecError
from p2p.errors import FrameError, FrameTooLarge

CHANNEL_PATTERN = re.compile(r"^[a-z][a-z0-9_.-]{0,31}$")
# msgpack overhead of [channel, payload]: array header 1, str header <= 2 + 32, bin header <= 5.
FRAME_OVERHEAD_BYTES_MAX = 40


@dataclass(frozen=True)
class Frame:
    """One application message."""

    channel: str  # handler name, matches CHANNEL_PATTERN
    payload: bytes  # opaque to the peer layer


def is_valid_channel(channel: object) -> bool:
    return type(channel) is str and CHANNEL_PATTERN.fullmatch(channel) is not None


def encode_frame(channel: str, payload: bytes, frame_bytes_max: int) -> bytes:
    """The bytes of one frame; FrameTooLarge when it would exceed the limit (the caller's problem)."""
    if not is_valid_channel(channel):
        raise ValueError(f"channel {channel!r} does not match {CHANNEL_PATTERN.pattern}")
    if type(payload) is not bytes:
        raise TypeError(f"payload must be bytes, got {type(payload).__name__}")
    data = codec.encode([channel, payload])
    if len(data) > frame_bytes_max:
        raise FrameTooLarge(
            f"frame of {len(data)} bytes on {channel!r} exceeds the limit of {frame_bytes_max}"
        )
    return data


def decode_frame(data: bytes, frame_bytes_max: int) -> Frame:
    """Parse one received frame strictly; FrameError names what is wrong."""
    if len(data) > frame_bytes_max:
        raise FrameError(f"frame of {len(data)} bytes exceeds the limit of {frame_bytes_max}")
    try:
        value = codec.decode(data, max_bytes=frame_bytes_max, max_container_len=2)
    except CodecError as exc:
        raise FrameError(f"frame is not canonical msgpack: {exc}") from None
    if type(value) is not list or len(value) != 2:
        raise FrameError("a frame is a two-element array [channel, payload]")
    channel, payload = value
    if not is_valid_channel(channel):
        raise FrameError(f"frame channel {str(channel)[:40]!r} is not a valid channel name")
    if type(payload) is not bytes:
        raise FrameError(f"frame payload must be bytes, got {type(payload).__name__}")
    return Frame(channel, payload)
