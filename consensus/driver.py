"""The one loop that drives a replica, in production and in the simulation alike.

`Driver` owns the input queue. It feeds the replica one input at a time, each preceded by a Tick with the
effects' clock, and performs every output list in order through an `Effects` object: a Persist is made
durable before any later output of the same list (double-sign protection), blocks go to the executor in
height order. An output that produces a new input (a block executed synchronously) only queues it; inputs
submitted while the queue is being drained are processed by the same drain, never re-entrantly (with
group commit, batch by batch: see `Driver`). Inputs
submitted before `start()` only queue, up to `prestart_inputs_max` (dropping a consensus message is safe:
votes and view changes are resent). After a Halt nothing more is fed.

The node's shell (node/validator.py) implements Effects over LevelDB, the peer layer, the chaincode and
asyncio timers; the simulation (tests/consensus/pbft_sim.py) over its virtual network and clock.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from consensus.events import (
    BlockExecuted,
    CancelTimer,
    ExecuteBlock,
    FetchBlocks,
    FetchTxs,
    Halt,
    Input,
    LogRecord,
    Output,
    Persist,
    ReportMisbehaviour,
    Send,
    SetTimer,
    Tick,
    TxRefused,
)
from consensus.replica import Replica


class Effects(Protocol):
    """What a driver needs from the world; one method per output kind, plus the clock."""

    def now_ms(self) -> int:
        """The current time (Unix ms); fed to the replica as a Tick before every input."""

    def persist(self, output: Persist) -> None:
        """Write the records atomically and durably (fsync) before returning."""

    def send(self, output: Send) -> None:
        """Best effort: losses are tolerated."""

    def execute(self, output: ExecuteBlock) -> BlockExecuted | None:
        """Store and execute the block; return its BlockExecuted if done already, None if it will be
        submitted later."""

    def set_timer(self, output: SetTimer) -> None:
        """(Re)arm the timer; when due, submit TimerFired(timer_id)."""

    def cancel_timer(self, output: CancelTimer) -> None: ...

    def fetch(self, output: FetchBlocks) -> None:
        """Ask the peer; submit BlocksFetched with its answer."""

    def fetch_txs(self, output: FetchTxs) -> None:
        """Ask the peer; submit TxsFetched with the transactions it served (signatures verified)."""

    def report(self, output: ReportMisbehaviour) -> None: ...

    def refuse_tx(self, output: TxRefused) -> None:
        """A transaction the replica did not take (full pool, replay, expired)."""

    def halt(self, output: Halt) -> None:
        """Stop the node loudly; nothing more will be fed."""


class Driver:
    """Feeds one replica and performs its outputs.

    With `group_commit`, the outputs of every input drained in one go (one batch) are held back: at the end
    of the batch all their Persist records are written in one durable write, then the other outputs are
    performed in their order. Persist-before-send holds per batch, and the node pays one fsync per batch
    instead of one per vote. Persisting a record earlier than an output that preceded it in its list is
    always safe: records only ever say what we signed or learned.
    """

    def __init__(
        self,
        replica: Replica,
        effects: Effects,
        *,
        prestart_inputs_max: int = 10_000,
        group_commit: bool = False,
        batch_inputs_max: int = 256,
    ) -> None:
        self.replica = replica
        self._effects = effects
        self._prestart_inputs_max = prestart_inputs_max
        self._group_commit = group_commit
        self._batch_inputs_max = batch_inputs_max  # bounds how long sends wait for the batch's write
        self._inputs: deque[Input] = deque()
        self._records: list[LogRecord] = []  # of the current batch, not yet written
        self._held: list[Output] = []  # the batch's other outputs, performed after the write
        self._started = False
        self._draining = False
        self.halted_reason: str | None = None

    @property
    def started(self) -> bool:
        return self._started

    def start(self) -> None:
        """Resume the replica (timers, a pending VIEW-CHANGE, a probe) and process what queued meanwhile."""
        if self._started:
            return
        self._started = True
        self._collect(self.replica.start(self._effects.now_ms()))
        self._flush()
        self.drain()

    def submit(self, event: Input) -> None:
        """Queue an input and process the queue, unless we are already inside it or not started."""
        self.enqueue(event)
        self.drain()

    def enqueue(self, event: Input) -> None:
        """Queue an input for the next drain (the caller arranges one), to batch it with others."""
        if self.halted_reason is not None:
            return
        if not self._started and len(self._inputs) >= self._prestart_inputs_max:
            return
        self._inputs.append(event)

    def drain(self) -> None:
        """Process every queued input, and those their outputs queue, batch by batch."""
        if self._draining or not self._started:
            return
        self._draining = True
        try:
            while self._inputs and self.halted_reason is None:
                for _ in range(self._batch_inputs_max):
                    if not self._inputs or self.halted_reason is not None:
                        break
                    event = self._inputs.popleft()
                    self._collect(self.replica.step(Tick(self._effects.now_ms())))
                    self._collect(self.replica.step(event))
                self._flush()
        finally:
            self._draining = False

    def _collect(self, outputs: list[Output]) -> None:
        if not self._group_commit:
            self._perform(outputs)
            return
        for output in outputs:
            if isinstance(output, Persist):
                self._records.extend(output.records)
            else:
                self._held.append(output)

    def _flush(self) -> None:
        """End of a batch: one durable write of its records, then its other outputs in order."""
        if self._records:
            records, self._records = self._records, []
            self._effects.persist(Persist(tuple(records)))
        if self._held:
            held, self._held = self._held, []
            self._perform(held)

    def _perform(self, outputs: list[Output]) -> None:
        effects = self._effects
        for output in outputs:
            if isinstance(output, Persist):
                effects.persist(output)
            elif isinstance(output, Send):
                effects.send(output)
            elif isinstance(output, ExecuteBlock):
                executed = effects.execute(output)
                if executed is not None:
                    self._inputs.append(executed)
            elif isinstance(output, SetTimer):
                effects.set_timer(output)
            elif isinstance(output, CancelTimer):
                effects.cancel_timer(output)
            elif isinstance(output, FetchBlocks):
                effects.fetch(output)
            elif isinstance(output, FetchTxs):
                effects.fetch_txs(output)
            elif isinstance(output, ReportMisbehaviour):
                effects.report(output)
            elif isinstance(output, TxRefused):
                effects.refuse_tx(output)
            elif isinstance(output, Halt):
                self.halted_reason = output.reason
                effects.halt(output)
