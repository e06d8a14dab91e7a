"""The replica's plumbing, shared by its parts: the clock, the output list, timers, signing and evidence.

None of these hold protocol state. The clock only moves on Tick; outputs accumulate in one Outbox per step
and the shell performs them in order; a timer's deadline is remembered so that a stale fire is ignored.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from typing import TypeVar

from consensus.certificate import Verify
from consensus.events import (
    BROADCAST,
    CancelTimer,
    LogRecord,
    Output,
    Persist,
    ReportMisbehaviour,
    Send,
    SetTimer,
)
from consensus.messages import Message, compute_signing_digest
from core.keys import SigningKey

M = TypeVar("M", bound=Message)


class Clock:
    """The replica's notion of now: the latest Tick (Unix ms); it never goes back."""

    def __init__(self) -> None:
        self.now_ms = 0

    def advance(self, now_ms: int) -> None:
        self.now_ms = max(self.now_ms, now_ms)


class Outbox:
    """Outputs of the current step, in the order the shell must perform them."""

    def __init__(self) -> None:
        self._outputs: list[Output] = []

    def take(self) -> list[Output]:
        outputs, self._outputs = self._outputs, []
        return outputs

    def emit(self, output: Output) -> None:
        self._outputs.append(output)

    def persist(self, *records: LogRecord) -> None:
        if records:
            self.emit(Persist(tuple(records)))

    def broadcast(self, message: Message) -> None:
        self.emit(Send(BROADCAST, message))

    def send(self, to: int, message: Message) -> None:
        self.emit(Send(to, message))

    def report(self, peer: int, reason: str, *evidence: Message) -> None:
        self.emit(ReportMisbehaviour(peer, reason, tuple(evidence)))


class Timers:
    """Deadlines of the timers the replica armed; the shell holds the real ones."""

    def __init__(self, clock: Clock, outbox: Outbox, slack_ms: int) -> None:
        self._clock = clock
        self._outbox = outbox
        self._slack_ms = slack_ms
        self._deadlines: dict[str, int] = {}

    def __contains__(self, timer_id: str) -> bool:
        return timer_id in self._deadlines

    def deadline(self, timer_id: str) -> int | None:
        return self._deadlines.get(timer_id)

    def set(self, timer_id: str, delay_ms: int) -> None:
        delay_ms = max(1, delay_ms)
        self._deadlines[timer_id] = self._clock.now_ms + delay_ms
        self._outbox.emit(SetTimer(timer_id, delay_ms))

    def cancel(self, timer_id: str) -> None:
        if self._deadlines.pop(timer_id, None) is not None:
            self._outbox.emit(CancelTimer(timer_id))

    def take_fired(self, timer_id: str) -> bool:
        """A TimerFired arrived: True (and the timer is disarmed) if it is due, False if it was cancelled
        or is a stale fire of a timer that was set again later."""
        deadline = self._deadlines.get(timer_id)
        if deadline is None or self._clock.now_ms + self._slack_ms < deadline:
            return False
        del self._deadlines[timer_id]
        return True


class Signer:
    """Signs our outgoing messages; the one place our key is used."""

    def __init__(self, chain_id: str, key: SigningKey) -> None:
        self._chain_id = chain_id
        self._key = key

    @property
    def public_key(self) -> bytes:
        return self._key.public_key

    def sign(self, unsigned: M) -> M:
        return replace(unsigned, signature=self._key.sign(compute_signing_digest(self._chain_id, unsigned)))


class SignatureCheck:
    """Checks the signature of a message against a public key, through the injected verify function."""

    def __init__(self, chain_id: str, verify: Verify) -> None:
        self.chain_id = chain_id
        self.verify = verify

    def is_signed_by(self, message: Message, public_key: bytes) -> bool:
        return self.verify(public_key, compute_signing_digest(self.chain_id, message), message.signature)


@dataclass(frozen=True, slots=True)
class Evidence:
    signer: int  # the validator that signed both messages
    first: Message  # the message seen first
    second: Message  # a conflicting one for the same (kind, view, height)


class EvidenceLog:
    """Pairs of conflicting signed messages from one validator (the most recent `limit`), each reported."""

    def __init__(self, outbox: Outbox, limit: int) -> None:
        self._outbox = outbox
        self._items: deque[Evidence] = deque(maxlen=limit)

    def record(self, first: Message, second: Message) -> None:
        self._items.append(Evidence(second.sender, first, second))
        kind = type(second).__name__
        self._outbox.report(
            second.sender, f"conflicting {kind} messages signed by validator {second.sender}", first, second
        )

    def items(self) -> tuple[Evidence, ...]:
        return tuple(self._items)
