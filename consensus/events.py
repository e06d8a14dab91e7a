"""Inputs to and outputs from the replica: the whole interface between the pure core and its shell.

The shell turns the outside world into inputs (a decoded peer message, a client transaction, a timer that
fired, the current time, a block the executor finished, blocks a peer served) and performs the outputs the
replica returns, in list order. See the package docstring for the exact shell contract.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.messages import Message
from core.block import Block, CommitCertificate
from core.tx import SignedTx
from core.validators import ValidatorSet

BROADCAST = -1  # Send.to value meaning "every other validator"

# Timer ids the replica sets; the shell treats them as opaque strings.
TIMER_BATCH = "batch"  # primary: the batch wait of the oldest pending transaction is over
TIMER_PROGRESS = "progress"  # normal case: no progress within the view timeout
TIMER_VIEW_CHANGE = "view_change"  # 2f+1 VIEW-CHANGEs seen but no NEW-VIEW yet
TIMER_RETRANSMIT = "retransmit"  # while changing view: resend our VIEW-CHANGE, probe for blocks
TIMER_FETCH = "fetch"  # state transfer: grace before fetching, then the response deadline
TIMER_TX_FETCH = "tx_fetch"  # a proposal's missing transactions: the deadline of the peer asked


# --- inputs -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tick:
    now_ms: int  # the node's clock (Unix ms); the only way time enters the replica


@dataclass(frozen=True, slots=True)
class MessageReceived:
    peer: int  # validator index of the authenticated connection the message arrived on
    message: Message  # already decoded strictly by consensus.messages.decode_message


@dataclass(frozen=True, slots=True)
class TxReceived:
    txs: tuple[SignedTx, ...]  # transactions whose signature and shape admission checked (a batch: one step)


@dataclass(frozen=True, slots=True)
class TimerFired:
    timer_id: str  # one of the TIMER_* ids a SetTimer named


@dataclass(frozen=True, slots=True)
class BlockExecuted:
    height: int  # the block the shell finished executing (always the next one after the last)
    state_root: bytes  # world-state root after executing it
    results_root: bytes  # merkle root of its transaction results
    validators: ValidatorSet | None = None  # the validator set the block approved (governance), if any


@dataclass(frozen=True, slots=True)
class BlocksFetched:
    peer: int  # the validator that served them
    blocks: tuple[tuple[Block, CommitCertificate], ...]  # ascending heights, as the peer sent them


@dataclass(frozen=True, slots=True)
class TxsFetched:
    peer: int  # the validator that answered a FetchTxs
    txs: tuple[SignedTx, ...]  # what it served; the shell verified their signatures


@dataclass(frozen=True, slots=True)
class PeerConnected:
    peer: int  # a validator whose link to us (re)opened; what it sent while the link was down is lost


@dataclass(frozen=True, slots=True)
class PeerDisconnected:
    peer: int  # a validator we have no link to (it closed, or a FetchBlocks found none to send on)


Input = (
    Tick
    | MessageReceived
    | TxReceived
    | TimerFired
    | BlockExecuted
    | BlocksFetched
    | TxsFetched
    | PeerConnected
    | PeerDisconnected
)


# --- outputs ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogRecord:
    key: bytes  # key inside the node's consensus-log area (consensus.log names the layout)
    value: bytes | None  # canonical encoding of the record; None deletes the key


@dataclass(frozen=True, slots=True)
class Persist:
    records: tuple[LogRecord, ...]  # write atomically and durably (fsync) before any later output


@dataclass(frozen=True, slots=True)
class Send:
    to: int  # validator index, or BROADCAST for all other validators
    message: Message  # encode with consensus.messages.encode_message


@dataclass(frozen=True, slots=True)
class ExecuteBlock:
    block: Block  # the next block to execute; heights arrive strictly in order with no gaps
    certificate: (
        CommitCertificate  # 2f+1 COMMIT signatures; store it with the block (state transfer serves it)
    )


@dataclass(frozen=True, slots=True)
class SetTimer:
    timer_id: str  # replaces any pending timer with the same id
    delay_ms: int  # fire TimerFired(timer_id) after this long


@dataclass(frozen=True, slots=True)
class CancelTimer:
    timer_id: str  # forget a pending timer; a fire that races the cancel is ignored by the replica


@dataclass(frozen=True, slots=True)
class FetchBlocks:
    from_height: int  # first height wanted
    to_height: int  # last height wanted; the peer may send fewer (the ones it has, up to its limit)
    peer: int  # validator index to ask; answer with BlocksFetched (an empty tuple if it has none)


@dataclass(frozen=True, slots=True)
class FetchTxs:
    peer: int  # validator index to ask (the proposer first); answer with TxsFetched (what it has)
    tx_ids: tuple[bytes, ...]  # transactions of a proposal we do not hold


@dataclass(frozen=True, slots=True)
class ReportMisbehaviour:
    peer: int  # validator index at fault (the signer for equivocation, the sender for bad frames)
    reason: str  # short human-readable diagnosis
    evidence: tuple[Message, ...] = ()  # signed messages proving it, where there are any


REFUSED_FULL = "mempool_full"  # the pending pool is at its limits: the client should retry later
REFUSED_REPLAY = "replay"  # committed within the validity window
REFUSED_EXPIRED = "expired"  # valid_until is below the next height
REFUSED_WRONG_CHAIN = "wrong_chain"


@dataclass(frozen=True, slots=True)
class TxRefused:
    tx_id: bytes  # a TxReceived the replica did not take into its pool (an already pending one is no refusal)
    reason: str  # one of the REFUSED_* codes (they are also the API's rejection codes)


@dataclass(frozen=True, slots=True)
class Halt:
    reason: str  # why the node must stop (state divergence); the replica ignores all later inputs


Output = (
    Persist
    | Send
    | ExecuteBlock
    | SetTimer
    | CancelTimer
    | FetchBlocks
    | FetchTxs
    | ReportMisbehaviour
    | TxRefused
    | Halt
)
