"""The driver loop against fake effects: order of outputs, Tick before each input, no re-entry, halting."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from pbft_sim import CHAIN_ID, GENESIS_HASH, GENESIS_ROOT, GENESIS_TIME_MS, SIM_PARAMS, make_tx

from consensus.driver import Driver
from consensus.events import (
    TIMER_BATCH,
    BlockExecuted,
    CancelTimer,
    ExecuteBlock,
    FetchBlocks,
    Halt,
    Input,
    MessageReceived,
    Output,
    Persist,
    ReportMisbehaviour,
    Send,
    SetTimer,
    Tick,
    TimerFired,
    TxReceived,
    TxRefused,
)
from consensus.messages import Message, Prepare, PrePrepare, compute_signing_digest
from consensus.replica import RecoveredState, Replica, ReplicaConfig
from core.block import EMPTY_ROOT, Block, BlockHeader, compute_tx_root
from core.devkeys import dev_node_key
from core.validators import ValidatorSet

KEYS = [dev_node_key("validator", i) for i in range(4)]
NOW = GENESIS_TIME_MS + 100_000


@dataclass
class FakeEffects:
    now: int = NOW
    done: list[str] = field(default_factory=list)
    executed: list[int] = field(default_factory=list)
    driver: Driver | None = None
    submit_on_send: Input | None = None

    def now_ms(self) -> int:
        return self.now

    def persist(self, output: Persist) -> None:
        self.done.append("persist")

    def send(self, output: Send) -> None:
        self.done.append(f"send:{type(output.message).__name__}")
        if self.submit_on_send is not None and self.driver is not None:
            event, self.submit_on_send = self.submit_on_send, None
            self.driver.submit(event)  # an effect that feeds back must not re-enter the replica
            self.done.append("submitted")

    def execute(self, output: ExecuteBlock) -> BlockExecuted | None:
        self.executed.append(output.block.header.height)
        self.done.append("execute")
        return None

    def set_timer(self, output: SetTimer) -> None:
        self.done.append(f"timer:{output.timer_id}")

    def cancel_timer(self, output: CancelTimer) -> None:
        self.done.append(f"cancel:{output.timer_id}")

    def fetch(self, output: FetchBlocks) -> None:
        self.done.append("fetch")

    def report(self, output: ReportMisbehaviour) -> None:
        self.done.append("report")

    def refuse_tx(self, output: TxRefused) -> None:
        self.done.append(f"refused:{output.reason}")

    def halt(self, output: Halt) -> None:
        self.done.append("halt")


class RecordingReplica(Replica):
    """The real replica, recording what it is fed and answering with what it really returns."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fed: list[Input] = []
        self.inside = False

    def step(self, event: Input) -> list[Output]:
        assert not self.inside, "the driver re-entered the replica"
        self.inside = True
        try:
            self.fed.append(event)
            return super().step(event)
        finally:
            self.inside = False


def make_primary() -> RecordingReplica:
    config = ReplicaConfig(
        CHAIN_ID, GENESIS_HASH, GENESIS_TIME_MS, tuple(k.public_key for k in KEYS), SIM_PARAMS, 0
    )
    return RecordingReplica(config, KEYS[0], RecoveredState.genesis(GENESIS_ROOT))


def test_inputs_before_start_only_queue_then_run_in_order_each_after_a_tick() -> None:
    replica, effects = make_primary(), FakeEffects()
    driver = Driver(replica, effects)
    driver.submit(TxReceived((make_tx(1),)))
    assert replica.fed == [] and effects.done == []
    effects.now = NOW + 7
    driver.start()
    assert effects.done[0] == "fetch"  # start() probes a peer for blocks
    assert replica.fed == [Tick(NOW + 7), TxReceived((make_tx(1),))]


def test_prestart_queue_is_bounded() -> None:
    replica, effects = make_primary(), FakeEffects()
    driver = Driver(replica, effects, prestart_inputs_max=2)
    for number in range(5):
        driver.submit(TxReceived((make_tx(number),)))
    driver.start()
    assert [e for e in replica.fed if isinstance(e, TxReceived)] == [
        TxReceived((make_tx(0),)),
        TxReceived((make_tx(1),)),
    ]


def test_persist_comes_before_the_send_of_the_same_step() -> None:
    replica, effects = make_primary(), FakeEffects()
    driver = Driver(replica, effects)
    driver.start()
    driver.submit(TxReceived((make_tx(2),)))
    effects.done.clear()
    effects.now = NOW + SIM_PARAMS.batch_wait_ms  # the batch wait is over: the primary proposes
    driver.submit(TimerFired(TIMER_BATCH))
    assert effects.done[:2] == ["persist", "send:PrePrepare"]


def test_an_input_submitted_by_an_effect_waits_for_the_current_step() -> None:
    replica, effects = make_primary(), FakeEffects()
    driver = Driver(replica, effects)
    effects.driver = driver
    driver.start()
    driver.submit(TxReceived((make_tx(3),)))
    effects.now = NOW + SIM_PARAMS.batch_wait_ms
    effects.submit_on_send = TxReceived((make_tx(4),))
    driver.submit(TimerFired(TIMER_BATCH))
    # the PRE-PREPARE's send queued tx 4 (RecordingReplica asserts it was not fed inside that step); it
    # was fed, after its own Tick, once the step that sent was over
    assert "submitted" in effects.done
    tick = Tick(NOW + SIM_PARAMS.batch_wait_ms)
    assert replica.fed[-4:] == [tick, TimerFired(TIMER_BATCH), tick, TxReceived((make_tx(4),))]


def test_after_a_halt_nothing_more_is_fed() -> None:
    replica, effects = make_primary(), FakeEffects()
    driver = Driver(replica, effects)
    driver.start()
    driver._perform([Halt("diverged")])  # as if a step had returned it
    fed = len(replica.fed)
    driver.submit(TxReceived((make_tx(5),)))
    assert driver.halted_reason == "diverged" and effects.done[-1] == "halt" and len(replica.fed) == fed


def test_group_commit_writes_a_batch_once_before_any_of_its_sends() -> None:
    # a backup receives a PRE-PREPARE and two PREPAREs in one batch: it would persist twice (its PREPARE
    # vote, then the prepared certificate and COMMIT vote) and send twice; grouped, it writes once
    config = ReplicaConfig(
        CHAIN_ID, GENESIS_HASH, GENESIS_TIME_MS, tuple(k.public_key for k in KEYS), SIM_PARAMS, 1
    )
    replica = RecordingReplica(config, KEYS[1], RecoveredState.genesis(GENESIS_ROOT))
    effects = FakeEffects()
    driver = Driver(replica, effects, group_commit=True)
    driver.start()
    effects.done.clear()
    block = make_block()
    driver.enqueue(MessageReceived(0, signed(PrePrepare.of_block(0, block, 0))))
    for sender in (2, 3):
        driver.enqueue(MessageReceived(sender, signed(Prepare(0, 1, block.block_hash, sender, b""))))
    driver.drain()
    sends = [d for d in effects.done if d.startswith("send:")]
    assert effects.done.count("persist") == 1 and effects.done[0] == "persist"
    assert sends[:2] == ["send:Prepare", "send:Commit"]
    # without grouping the same inputs write twice, each before its own send
    replica, effects = RecordingReplica(config, KEYS[1], RecoveredState.genesis(GENESIS_ROOT)), FakeEffects()
    driver = Driver(replica, effects)
    driver.start()
    effects.done.clear()
    driver.submit(MessageReceived(0, signed(PrePrepare.of_block(0, block, 0))))
    for sender in (2, 3):
        driver.submit(MessageReceived(sender, signed(Prepare(0, 1, block.block_hash, sender, b""))))
    assert effects.done.count("persist") == 2
    assert effects.done.index("persist") < effects.done.index("send:Prepare")


def signed(message: Message) -> Message:
    return replace(message, signature=KEYS[message.sender].sign(compute_signing_digest(CHAIN_ID, message)))


def make_block() -> Block:
    header = BlockHeader(
        chain_id=CHAIN_ID,
        height=1,
        prev_hash=GENESIS_HASH,
        time_ms=NOW,
        proposer=0,
        tx_count=0,
        tx_root=compute_tx_root(()),
        state_height=0,
        state_root=GENESIS_ROOT,
        results_root=EMPTY_ROOT,
        validators_hash=ValidatorSet.of_keys(k.public_key for k in KEYS).set_hash,
        next_validators_hash=ValidatorSet.of_keys(k.public_key for k in KEYS).set_hash,
    )
    return Block(header, ())
