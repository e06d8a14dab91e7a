"""The consensus wire codec is canonical and strict; the NEW-VIEW re-proposal rule; the log round-trips."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pbft_sim import CHAIN_ID, GENESIS_HASH, SIM_PARAMS, make_tx
from test_replica import KEYS, PUBLIC, VSET, make_block, pre_prepare, sign

from consensus import log as clog
from consensus.certificate import (
    ProofError,
    compute_new_view_plan,
    validate_prepared_certificate,
    validate_view_change,
)
from consensus.messages import (
    Checkpoint,
    Commit,
    Message,
    NewView,
    Prepare,
    PreparedCertificate,
    ViewChange,
    compute_signing_digest,
    decode_message,
    encode_message,
    message_to_wire,
)
from core import codec
from core.block import Block, CommitCertificate, compute_commit_digest
from core.errors import CodecError
from core.keys import is_valid_signature
from core.validators import ValidatorSet


class AlwaysKnown:
    """One validator set at every height, all of them certain (no reconfiguration)."""

    def __init__(self, validators: ValidatorSet) -> None:
        self.validators = validators

    def is_known(self, height: int) -> bool:
        return True

    def at(self, height: int) -> ValidatorSet:
        return self.validators


N = 4
F = 1
DIGEST = b"\x07" * 32


def decode(data: bytes) -> Message:
    return decode_message(data, params=SIM_PARAMS)


def prepared_cert(block: Block, view: int = 0) -> PreparedCertificate:
    height = block.header.height
    pp = pre_prepare(block, view)
    votes = [(pp.sender, pp.signature)]
    for sender in range(N):
        if sender != pp.sender and len(votes) < 3:
            votes.append((sender, sign(Prepare(view, height, block.block_hash, sender, b"")).signature))
    return PreparedCertificate(view, block.header, tuple(sorted(votes)))


def samples() -> list[Message]:
    block = make_block(txs=(make_tx(1), make_tx(2)))
    cert = prepared_cert(block)
    vc = sign(ViewChange(1, 2, None, (cert,), b"", (block,)))
    return [
        pre_prepare(block),
        sign(Prepare(0, 1, DIGEST, 1, b"")),
        sign(Commit(0, 1, DIGEST, 2, b"")),
        sign(Checkpoint(4, DIGEST, DIGEST, 3, b"")),
        vc,
        sign(NewView(1, 1, (replace(vc, blocks=()),), (pre_prepare(block, 1),), b"")),
    ]


@pytest.mark.parametrize("message", samples(), ids=lambda m: type(m).__name__)
def test_round_trip_is_exact_and_canonical(message: Message) -> None:
    data = encode_message(message)
    assert decode(data) == message
    assert encode_message(decode(data)) == data


@pytest.mark.parametrize("message", samples(), ids=lambda m: type(m).__name__)
def test_extra_or_missing_fields_are_rejected(message: Message) -> None:
    wire = message_to_wire(message)
    with pytest.raises(CodecError):
        decode(codec.encode({**wire, "extra": 1}))
    wire.pop("sender")
    with pytest.raises(CodecError):
        decode(codec.encode(wire))


@pytest.mark.parametrize(
    "field, value",
    [("view", -1), ("height", "1"), ("block_hash", b"short"), ("sender", 1024), ("signature", b"\x00" * 63)],
)
def test_wrong_field_types_are_rejected(field: str, value: object) -> None:
    wire = message_to_wire(sign(Prepare(0, 1, DIGEST, 1, b"")))
    wire[field] = value
    with pytest.raises(CodecError):
        decode(codec.encode(wire))


def test_garbage_and_oversize_are_rejected() -> None:
    for data in (b"", b"\xc1", b"\x80", codec.encode([1, 2]), codec.encode({"kind": "nope"})):
        with pytest.raises(CodecError):
            decode(data)
    with pytest.raises(CodecError):
        decode(b"\x00" * (SIM_PARAMS.pipeline_depth * (SIM_PARAMS.block_bytes_max + 65536) + 65537))


def test_view_change_blocks_must_match_prepared_certificates() -> None:
    vc = samples()[4]
    assert isinstance(vc, ViewChange)
    other = make_block(txs=(make_tx(3),))
    with pytest.raises(CodecError):
        decode(encode_message(replace(vc, blocks=(other,))))


def test_commit_signature_is_over_the_core_commit_digest() -> None:
    commit = sign(Commit(3, 9, DIGEST, 2, b""))
    assert compute_signing_digest(CHAIN_ID, commit) == compute_commit_digest(CHAIN_ID, 3, 9, DIGEST)
    assert is_valid_signature(PUBLIC[2], compute_commit_digest(CHAIN_ID, 3, 9, DIGEST), commit.signature)


def test_signing_digests_differ_across_kinds_and_chains() -> None:
    prepare = Prepare(0, 1, DIGEST, 1, b"")
    commit = Commit(0, 1, DIGEST, 1, b"")
    assert compute_signing_digest(CHAIN_ID, prepare) != compute_signing_digest(CHAIN_ID, commit)
    assert compute_signing_digest(CHAIN_ID, prepare) != compute_signing_digest("other-chain", prepare)


def test_prepared_certificate_needs_primary_and_quorum() -> None:
    block = make_block()
    cert = prepared_cert(block)
    validate_prepared_certificate(cert, CHAIN_ID, VSET, is_valid_signature)
    with pytest.raises(ProofError):
        validate_prepared_certificate(replace(cert, votes=cert.votes[:2]), CHAIN_ID, VSET, is_valid_signature)
    with pytest.raises(ProofError):
        validate_prepared_certificate(replace(cert, view=1), CHAIN_ID, VSET, is_valid_signature)


def test_view_change_with_forged_certificate_is_rejected() -> None:
    block = make_block()
    cert = prepared_cert(block)
    forged = replace(cert, votes=tuple((i, b"\x00" * 64) for i, _ in cert.votes))
    vc = sign(ViewChange(1, 2, None, (forged,), b"", (block,)))
    with pytest.raises(ProofError):
        validate_view_change(vc, CHAIN_ID, VSET, AlwaysKnown(VSET), is_valid_signature)


def _chain(count: int, tag: int) -> list[Block]:
    blocks: list[Block] = []
    prev = GENESIS_HASH
    for height in range(1, count + 1):
        block = make_block(height, txs=(make_tx(tag * 100 + height),))
        block = Block(replace(block.header, prev_hash=prev), block.txs)
        blocks.append(block)
        prev = block.block_hash
    return blocks


def test_plan_takes_highest_view_per_height_and_truncates_at_a_chain_break() -> None:
    a1, a2 = _chain(2, 1)
    b1, _ = _chain(2, 2)
    # sender 2 prepared a1, a2 in view 0; sender 3 prepared b1 in view 1 (a1 was abandoned in view 1)
    vc2 = ViewChange(2, 2, None, (prepared_cert(a1, 0), prepared_cert(a2, 0)), b"")
    vc3 = ViewChange(2, 3, None, (prepared_cert(b1, 1),), b"")
    plan = compute_new_view_plan([vc2, vc3], GENESIS_HASH, SIM_PARAMS.pipeline_depth, F)
    # b1 wins height 1 (higher view); a2 does not link to b1, so the re-proposals stop there
    assert [h.block_hash for h in plan.reproposals] == [b1.block_hash]
    plan = compute_new_view_plan([vc2], GENESIS_HASH, SIM_PARAMS.pipeline_depth, F)
    assert [h.block_hash for h in plan.reproposals] == [a1.block_hash, a2.block_hash]


def test_plan_starts_after_the_highest_commit_certificate() -> None:
    a1, a2 = _chain(2, 3)
    digest = compute_commit_digest(CHAIN_ID, 0, 1, a1.block_hash)
    cert = CommitCertificate(0, 1, a1.block_hash, tuple((i, KEYS[i].sign(digest)) for i in range(3)))
    vc = ViewChange(1, 2, cert, (prepared_cert(a2, 0),), b"")
    plan = compute_new_view_plan([vc], GENESIS_HASH, SIM_PARAMS.pipeline_depth, F)
    assert (plan.low_height, plan.low_hash) == (1, a1.block_hash)
    assert [h.height for h in plan.reproposals] == [2]


def _commit_cert(block: Block, view: int = 0) -> CommitCertificate:
    height = block.header.height
    digest = compute_commit_digest(CHAIN_ID, view, height, block.block_hash)
    return CommitCertificate(
        view, height, block.block_hash, tuple((i, KEYS[i].sign(digest)) for i in range(3))
    )


def test_plan_recommits_blocks_only_a_faulty_validator_delivered() -> None:
    # Seed 43636's shape: validator 0 alone delivered 1..3 (it alone saw the COMMIT quorum of 2), the
    # honest 2 and 3 delivered 1 and prepared 2 and 3, which chain up to 0's certificate of 3.
    b1, b2, b3 = _chain(3, 4)
    faulty = ViewChange(5, 0, _commit_cert(b3), (), b"")
    honest = [ViewChange(5, s, _commit_cert(b1), (prepared_cert(b2), prepared_cert(b3)), b"") for s in (2, 3)]
    plan = compute_new_view_plan([faulty, *honest], GENESIS_HASH, SIM_PARAMS.pipeline_depth, F)
    assert (plan.low_height, plan.low_hash) == (1, b1.block_hash)
    assert [h.block_hash for h in plan.reproposals] == [b2.block_hash, b3.block_hash]
    assert plan.top_certificate == faulty.stable


def test_plan_keeps_the_top_when_the_prepared_chain_does_not_reach_it() -> None:
    b1, _unprepared_b2, b3 = _chain(3, 5)
    other2 = _chain(2, 6)[1]  # a block 2 that does not link to b1 (prepared in an older view)
    faulty = ViewChange(5, 0, _commit_cert(b3), (), b"")
    honest = [
        ViewChange(5, s, _commit_cert(b1), (prepared_cert(other2), prepared_cert(b3)), b"") for s in (2, 3)
    ]
    plan = compute_new_view_plan([faulty, *honest], GENESIS_HASH, SIM_PARAMS.pipeline_depth, F)
    assert (plan.low_height, plan.reproposals) == (3, ())


def test_plan_never_drops_below_what_f_plus_1_senders_delivered() -> None:
    # only the faulty sender reports height 3; two senders reached 2, so the low mark may fall to 2, not 1
    b1, b2, b3 = _chain(3, 7)
    faulty = ViewChange(5, 0, _commit_cert(b3), (), b"")
    at_two = ViewChange(5, 2, _commit_cert(b2), (prepared_cert(b3),), b"")
    at_one = ViewChange(5, 3, _commit_cert(b1), (prepared_cert(b2), prepared_cert(b3)), b"")
    plan = compute_new_view_plan([faulty, at_two, at_one], GENESIS_HASH, SIM_PARAMS.pipeline_depth, F)
    assert (plan.low_height, [h.height for h in plan.reproposals]) == (2, [3])


def test_plan_fits_recommits_and_new_heights_in_the_pipeline_depth() -> None:
    # the chain from 1 reaches the top (2), but the prepared run above the top already fills
    # pipeline_depth (3 and 4): block 2 is not re-proposed, so the NEW-VIEW stays within its size limit
    b1, b2, b3, b4 = _chain(4, 8)
    faulty = ViewChange(5, 0, _commit_cert(b2), (), b"")
    low_a = ViewChange(5, 2, _commit_cert(b1), (prepared_cert(b2), prepared_cert(b3)), b"")
    low_b = ViewChange(5, 3, _commit_cert(b1), (prepared_cert(b3), prepared_cert(b4)), b"")
    plan = compute_new_view_plan([faulty, low_a, low_b], GENESIS_HASH, SIM_PARAMS.pipeline_depth, F)
    assert (plan.low_height, [h.height for h in plan.reproposals]) == (2, [3, 4])
    plan = compute_new_view_plan([faulty, low_a], GENESIS_HASH, SIM_PARAMS.pipeline_depth, F)
    assert (plan.low_height, [h.height for h in plan.reproposals]) == (1, [2, 3])


def test_log_records_round_trip() -> None:
    block = make_block()
    slot = clog.PreparedSlot(prepared_cert(block), block)
    vc = samples()[4]
    assert isinstance(vc, ViewChange)
    records = [
        clog.record_view(2, 3, True),
        clog.record_vote(1, clog.VoteRecord(3, clog.PHASE_COMMIT, DIGEST)),
        clog.record_prepared(slot),
        clog.record_view_change(vc),
        clog.record_checkpoint(4, DIGEST, DIGEST),
    ]
    state = clog.load_persisted_state(
        {r.key: r.value for r in records if r.value is not None}, params=SIM_PARAMS
    )
    assert (state.epoch, state.view, state.changing, state.checkpoint_height) == (2, 3, True, 4)
    assert state.votes[1] == clog.VoteRecord(3, clog.PHASE_COMMIT, DIGEST)
    assert state.prepared[1] == slot and state.view_change == vc
    with pytest.raises(CodecError):
        clog.load_persisted_state({b"c1/unknown": b"\x80"}, params=SIM_PARAMS)
    # a view record written before epochs existed is epoch 0
    legacy = clog.LogRecord(clog.KEY_VIEW, codec.encode({"changing": False, "view": 5}))
    assert clog.load_persisted_state({legacy.key: legacy.value}, params=SIM_PARAMS).epoch == 0
