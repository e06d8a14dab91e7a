"""Block headers, blocks, results and commit certificates (core.block)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from core import codec
from core.block import (
    EMPTY_ROOT,
    RESULT_OK,
    Block,
    BlockHeader,
    CertificateError,
    CommitCertificate,
    TxResult,
    compute_commit_digest,
    compute_results_root,
    compute_tx_root,
    encode_results_and_root,
    verify_commit_certificate,
)
from core.devkeys import dev_admin_key, dev_node_key
from core.errors import CodecError, InvalidInput, TransactionError
from core.hashing import Domain, hash_value, merkle_root, tagged_hash
from core.tx import TxBody, sign_transaction
from core.validators import ValidatorSet

CHAIN = "carbon-devnet"
VALIDATORS = [dev_node_key("validator", i) for i in range(4)]
VALIDATOR_KEYS = ValidatorSet.of_keys(key.public_key for key in VALIDATORS)


def make_tx(nonce: int) -> Any:
    key = dev_admin_key("ent-a")
    body = TxBody(CHAIN, "carbon", "noop", {"n": nonce}, "ent-a", key.public_key, nonce, 10)
    return sign_transaction(body, key)


def make_header(**changes: Any) -> BlockHeader:
    txs = [make_tx(1), make_tx(2)]
    header = BlockHeader(
        chain_id=CHAIN,
        height=3,
        prev_hash=b"\x01" * 32,
        time_ms=1_767_225_600_000,
        proposer=1,
        tx_count=len(txs),
        tx_root=compute_tx_root(txs),
        state_height=1,
        state_root=b"\x02" * 32,
        results_root=EMPTY_ROOT,
        validators_hash=EMPTY_ROOT,
        next_validators_hash=EMPTY_ROOT,
    )
    return dataclasses.replace(header, **changes)


def make_certificate(header: BlockHeader, signers: list[int], view: int = 0) -> CommitCertificate:
    digest = compute_commit_digest(header.chain_id, view, header.height, header.block_hash)
    votes = tuple((i, VALIDATORS[i].sign(digest)) for i in signers)
    return CommitCertificate(view, header.height, header.block_hash, votes)


# --- headers and blocks -----------------------------------------------------------------------------------


def test_header_wire_round_trip() -> None:
    header = make_header()
    assert BlockHeader.from_wire(codec.decode(codec.encode(header.to_wire()))) == header


def test_block_hash_is_tagged_hash_of_header_map() -> None:
    header = make_header()
    assert header.block_hash == tagged_hash(Domain.BLOCK_HEADER, codec.encode(header.to_wire()))
    assert list(header.to_wire()) == sorted(header.to_wire())


def test_every_header_field_changes_the_hash() -> None:
    header = make_header()
    for name, value in header.to_wire().items():
        changed: Any = (
            value + "x" if isinstance(value, str) else (value + 1 if isinstance(value, int) else b"\x09" * 32)
        )
        assert dataclasses.replace(header, **{name: changed}).block_hash != header.block_hash, name


def test_block_round_trip() -> None:
    txs = (make_tx(1), make_tx(2))
    block = Block(make_header(), txs)
    decoded = Block.decode(block.encode())
    assert decoded.header == block.header
    assert decoded.txs == txs
    assert decoded.block_hash == block.header.block_hash
    assert codec.decode(block.encode()) == {"header": block.header.to_wire(), "txs": [tx.raw for tx in txs]}


def test_empty_block_round_trip() -> None:
    header = make_header(tx_count=0, tx_root=compute_tx_root([]))
    assert Block.decode(Block(header, ()).encode()).txs == ()


def test_tx_root_is_merkle_of_ids() -> None:
    txs = [make_tx(1), make_tx(2), make_tx(3)]
    assert compute_tx_root(txs) == merkle_root([tx.tx_id for tx in txs])
    assert compute_tx_root([]) == EMPTY_ROOT == tagged_hash(Domain.MERKLE_EMPTY, b"")


def _wire(**changes: Any) -> dict[str, Any]:
    wire = make_header().to_wire()
    wire.update(changes)
    return wire


@pytest.mark.parametrize(
    "value",
    [
        [1, 2],
        "header",
        {k: v for k, v in _wire().items() if k != "height"},
        {**_wire(), "extra": 1},
        _wire(height=-1),
        _wire(height=True),
        _wire(time_ms="1"),
        _wire(proposer=None),
        _wire(tx_count=-2),
        _wire(state_height=b"\x00"),
        _wire(prev_hash=b"\x01" * 31),
        _wire(tx_root="00" * 32),
        _wire(state_root=b"\x00" * 33),
        _wire(results_root=None),
        _wire(chain_id=b"carbon-devnet"),
    ],
)
def test_header_from_wire_rejects_malformed(value: Any) -> None:
    with pytest.raises(CodecError):
        BlockHeader.from_wire(value)


@pytest.mark.parametrize(
    "value",
    [
        {"header": _wire()},
        {"header": _wire(), "txs": [], "extra": 0},
        {"header": _wire(), "txs": "x"},
        {"header": _wire(), "txs": ["not bytes"]},
        {"header": [], "txs": []},
    ],
)
def test_block_from_wire_rejects_malformed(value: Any) -> None:
    with pytest.raises(CodecError):
        Block.from_wire(value)


def test_block_with_malformed_tx_rejected() -> None:
    with pytest.raises(TransactionError):
        Block.from_wire({"header": _wire(), "txs": [b"\x00"]})
    with pytest.raises(InvalidInput):
        Block.decode(b"\x92\x01\x02")


# --- results ----------------------------------------------------------------------------------------------


def test_results() -> None:
    ok = TxResult(RESULT_OK, "", ({"type": "transfer", "amount": 5},))
    failed = TxResult("insufficient_balance", "has 3, needs 5")
    assert ok.is_ok and not failed.is_ok
    assert ok.to_wire() == {"code": "ok", "events": [{"type": "transfer", "amount": 5}], "message": ""}
    assert ok.result_hash == hash_value(Domain.TX_RESULT, {"code": "ok", "events": list(ok.events)})
    assert failed.result_hash == TxResult("insufficient_balance", "worded otherwise").result_hash
    assert TxResult.from_wire(codec.decode(codec.encode(ok.to_wire()))) == ok
    assert compute_results_root([ok, failed]) == merkle_root([ok.result_hash, failed.result_hash])
    assert compute_results_root([]) == EMPTY_ROOT
    with pytest.raises(CodecError):
        TxResult.from_wire({"code": 1, "events": [], "message": ""})
    with pytest.raises(CodecError):
        TxResult.from_wire({"code": "ok", "events": []})


def test_results_encoded_with_their_root_are_the_encodings_of_each_and_the_root() -> None:
    results = [
        TxResult(RESULT_OK, "", ({"type": "transfer", "to": "ent2", "amount_t": 5}, {"type": "b", "a": [1]})),
        TxResult("insufficient_balance", "has 3, needs 5 t — détail"),  # a non-ASCII message
        TxResult(RESULT_OK, "", ({"type": "nested", "z": {"y": None, "x": True}},)),
        TxResult("x" * 40, "y" * 300),  # past the fixstr lengths
    ]
    for count in range(len(results) + 1):
        encodings, root = encode_results_and_root(results[:count])
        assert encodings == [codec.encode(result.to_wire()) for result in results[:count]]
        assert root == compute_results_root(results[:count])


# --- commit certificates ----------------------------------------------------------------------------------


def test_commit_digest() -> None:
    header = make_header()
    digest = compute_commit_digest(CHAIN, 2, header.height, header.block_hash)
    expected_map = {"block_hash": header.block_hash, "chain_id": CHAIN, "height": 3, "view": 2}
    assert digest == tagged_hash(Domain.COMMIT, codec.encode(expected_map))
    assert digest != compute_commit_digest("other-devnet", 2, header.height, header.block_hash)
    assert digest != compute_commit_digest(CHAIN, 3, header.height, header.block_hash)


def test_valid_certificate_with_quorum() -> None:
    header = make_header()
    for signers in ([0, 1, 2], [1, 2, 3], [0, 1, 2, 3]):
        verify_commit_certificate(make_certificate(header, signers), header, VALIDATOR_KEYS)
    verify_commit_certificate(make_certificate(header, [0, 2, 3], view=7), header, VALIDATOR_KEYS)


def test_certificate_wire_round_trip() -> None:
    header = make_header()
    certificate = make_certificate(header, [0, 1, 3], view=4)
    again = CommitCertificate.from_wire(codec.decode(codec.encode(certificate.to_wire())))
    assert again == certificate
    verify_commit_certificate(again, header, VALIDATOR_KEYS)


def _replace_votes(certificate: CommitCertificate, votes: Any) -> CommitCertificate:
    return dataclasses.replace(certificate, votes=tuple(votes))


def test_too_few_votes() -> None:
    header = make_header()
    with pytest.raises(CertificateError, match="2 votes, a quorum needs 3"):
        verify_commit_certificate(make_certificate(header, [0, 1]), header, VALIDATOR_KEYS)


def test_duplicate_validator() -> None:
    header = make_header()
    certificate = make_certificate(header, [0, 1])
    doubled = _replace_votes(certificate, [*certificate.votes, certificate.votes[1]])
    with pytest.raises(CertificateError, match="distinct"):
        verify_commit_certificate(doubled, header, VALIDATOR_KEYS)


def test_unordered_indexes() -> None:
    header = make_header()
    certificate = make_certificate(header, [0, 1, 2])
    with pytest.raises(CertificateError, match="increasing"):
        verify_commit_certificate(
            _replace_votes(certificate, reversed(certificate.votes)), header, VALIDATOR_KEYS
        )


def test_wrong_block_hash() -> None:
    header = make_header()
    other = make_header(time_ms=header.time_ms + 1)
    with pytest.raises(CertificateError, match="another block"):
        verify_commit_certificate(make_certificate(other, [0, 1, 2]), header, VALIDATOR_KEYS)


def test_wrong_height() -> None:
    header = make_header()
    certificate = dataclasses.replace(make_certificate(header, [0, 1, 2]), height=4)
    with pytest.raises(CertificateError, match="height 4"):
        verify_commit_certificate(certificate, header, VALIDATOR_KEYS)


def test_forged_signature() -> None:
    header = make_header()
    certificate = make_certificate(header, [0, 1, 2])
    votes = list(certificate.votes)
    votes[1] = (1, dev_node_key("validator", 9).sign(compute_commit_digest(CHAIN, 0, 3, header.block_hash)))
    with pytest.raises(CertificateError, match="validator 1"):
        verify_commit_certificate(_replace_votes(certificate, votes), header, VALIDATOR_KEYS)
    votes[1] = (1, b"\x00" * 63)
    with pytest.raises(CertificateError, match="validator 1"):
        verify_commit_certificate(_replace_votes(certificate, votes), header, VALIDATOR_KEYS)


def test_signature_for_another_view_does_not_count() -> None:
    header = make_header()
    certificate = dataclasses.replace(make_certificate(header, [0, 1, 2], view=0), view=1)
    with pytest.raises(CertificateError, match="does not verify"):
        verify_commit_certificate(certificate, header, VALIDATOR_KEYS)


def test_a_vote_from_a_non_member_is_refused() -> None:
    header = make_header()
    certificate = make_certificate(header, [0, 1, 2])
    digest = compute_commit_digest(CHAIN, 0, 3, header.block_hash)
    votes = [*certificate.votes[:2], (4, dev_node_key("validator", 4).sign(digest))]
    with pytest.raises(CertificateError, match="validator 4, not a member"):
        verify_commit_certificate(_replace_votes(certificate, votes), header, VALIDATOR_KEYS)
    votes = [(-1, b"\x00" * 64), *certificate.votes]
    with pytest.raises(CertificateError, match="validator -1, not a member"):
        verify_commit_certificate(_replace_votes(certificate, votes), header, VALIDATOR_KEYS)


@pytest.mark.parametrize(
    "value",
    [
        [],
        {"block_hash": b"\x00" * 32, "height": 1, "view": 0},
        {"block_hash": b"\x00" * 31, "height": 1, "view": 0, "votes": []},
        {"block_hash": b"\x00" * 32, "height": -1, "view": 0, "votes": []},
        {"block_hash": b"\x00" * 32, "height": 1, "view": "0", "votes": []},
        {"block_hash": b"\x00" * 32, "height": 1, "view": 0, "votes": {}},
        {"block_hash": b"\x00" * 32, "height": 1, "view": 0, "votes": [[0]]},
        {"block_hash": b"\x00" * 32, "height": 1, "view": 0, "votes": [[True, b"\x00" * 64]]},
        {"block_hash": b"\x00" * 32, "height": 1, "view": 0, "votes": [["0", b"\x00" * 64]]},
        {"block_hash": b"\x00" * 32, "height": 1, "view": 0, "votes": [[0, "sig"]]},
        {"block_hash": b"\x00" * 32, "height": 1, "view": 0, "votes": [(0, b"\x00" * 64, 1)]},
    ],
)
def test_certificate_from_wire_rejects_malformed(value: Any) -> None:
    with pytest.raises(CodecError):
        CommitCertificate.from_wire(value)
