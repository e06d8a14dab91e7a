"""The worked examples printed in docs/protocol/core.md, recomputed so the document cannot drift from the code."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import nacl.signing

from core import codec
from core.block import EMPTY_ROOT, BlockHeader, TxResult, compute_commit_digest
from core.devkeys import dev_admin_key, dev_node_key
from core.genesis import parse_genesis
from core.hashing import merkle_root
from core.keys import compute_key_id
from core.tx import TxBody, sign_transaction, transaction_to_json
from core.validators import ValidatorSet, compute_activation_height

BODY_HEX = (
    "88a46172677382a6616d6f756e7405a2746fa5656e742d62a8636861696e5f6964ad636172626f6e2d6465766e6574"
    "a9636861696e636f6465a6636172626f6ea866756e6374696f6eb37472616e736665725f616c6c6f77616e636573"
    "a56e6f6e636501aa73656e6465725f6b6579c420545f38ecc12f614eda3cea5cbf8a485d727b0a2593562e65da40"
    "7d2be2d86f92aa73656e6465725f6f7267a5656e742d61ab76616c69645f756e74696c64"
)
TX_ID_HEX = "8e2363b14eb12cb944dcab465f099c818d27473f3cc8fdc8c69fb329f91203a8"
SIGNATURE_HEX = (
    "fe9116533a26d89538fdf07faaaffb1236fe03fdcc63b7261119659ab16ebd5f"
    "8fadaaae8a59e52acfbd4334189bd50dc6b34bff484d6ac8174f054a39fe3f02"
)
PUBLIC_KEY_HEX = "545f38ecc12f614eda3cea5cbf8a485d727b0a2593562e65da407d2be2d86f92"
SEED_HEX = "edb517bda40072b07313f6810b09bbdcb2625a81c7b7e6b81ef72df5f1a01695"


def _h(tag: str, payload: bytes) -> bytes:
    return hashlib.sha256(b"carbonchain/" + tag.encode() + b"\x00" + payload).digest()


def test_dev_key() -> None:
    key = dev_admin_key("ent-a")
    assert key.seed.hex() == SEED_HEX
    assert key.seed == hashlib.sha256(b"carbonchain insecure dev seed\x00org/ent-a/admin").digest()
    assert key.public_key.hex() == PUBLIC_KEY_HEX
    assert compute_key_id(key.public_key) == "1b1d9a10f9f31d40"


def test_signed_transaction_example() -> None:
    key = dev_admin_key("ent-a")
    body = TxBody(
        chain_id="carbon-devnet",
        chaincode="carbon",
        function="transfer_allowances",
        args={"to": "ent-b", "amount": 5},
        sender_org="ent-a",
        sender_key=key.public_key,
        nonce=1,
        valid_until=100,
    )
    tx = sign_transaction(body, key)
    assert tx.body_bytes.hex() == BODY_HEX
    assert tx.tx_id.hex() == TX_ID_HEX == _h("tx", bytes.fromhex(BODY_HEX)).hex()
    assert tx.signature.hex() == SIGNATURE_HEX
    assert tx.raw == b"\x82\xa4body\xc4\xaf" + tx.body_bytes + b"\xa9signature\xc4\x40" + tx.signature
    # An independent Ed25519 implementation (libsodium) agrees on key, signature and verification.
    nacl_key = nacl.signing.SigningKey(bytes.fromhex(SEED_HEX))
    assert bytes(nacl_key.verify_key).hex() == PUBLIC_KEY_HEX
    assert nacl_key.sign(tx.tx_id).signature.hex() == SIGNATURE_HEX
    assert transaction_to_json(tx)["signature"] == SIGNATURE_HEX


def test_merkle_example() -> None:
    leaves = [bytes([i]) * 32 for i in range(3)]
    leaf = [_h("merkle-leaf", item) for item in leaves]
    assert leaf[0].hex() == "3b7b5f1bd6f784fad3f242ccb7985ebbbeed0b82dde2ad387e2e934072f3c52f"
    assert leaf[1].hex() == "fe7524b3cd12b1b4a5d7f00cffa674444f4effa092022b32adb883abfbbdf3c5"
    assert leaf[2].hex() == "24fb86cba0d9a734fabe2e0df2cf8b8a819650615a7fba6448b3fe26c37687ba"
    n01 = _h("merkle-node", leaf[0] + leaf[1])
    assert n01.hex() == "7ae7b1bd3451c99a440fa1c3fedaca1e549ed2f5d3ffc638e4dcab1f6075f6e0"
    root = "312c272080efdc4cd2626708088f8e487ccf8bb7a8a16e0d3f9c37635e7c5205"
    assert _h("merkle-node", n01 + leaf[2]).hex() == root == merkle_root(leaves).hex()
    assert merkle_root([]).hex() == "1cf1914eefc960f3ea108ead55761bce3f3ffe6c97f0e6ac9ceaffe9567f3a04"


DEV_SET = ValidatorSet.of_keys(dev_node_key("validator", i).public_key for i in range(4))


def test_validator_set_example() -> None:
    encoded = codec.encode({"members": [[number, key] for number, key in DEV_SET.members]})
    assert len(encoded) == 154 and encoded.hex().startswith("81a76d656d62657273949200c4209a18fc93")
    assert DEV_SET.set_hash.hex() == "8305b67da80aa51458d06b401f98484a52b7555145f46c4b841b0fc0bb8dbbed"
    assert DEV_SET.set_hash == _h("validator-set", encoded)
    assert [DEV_SET.primary(v) for v in range(6)] == [0, 1, 2, 3, 0, 1]
    later = ValidatorSet(((1, DEV_SET.key(1)), (2, DEV_SET.key(2)), (3, DEV_SET.key(3)), (7, DEV_SET.key(0))))
    assert [later.primary(v) for v in range(5)] == [1, 2, 3, 7, 1]  # by position, not by number
    assert compute_activation_height(13, checkpoint_interval=100, pipeline_depth=2) == 100
    assert compute_activation_height(94, checkpoint_interval=100, pipeline_depth=2) == 100
    assert compute_activation_height(95, checkpoint_interval=100, pipeline_depth=2) == 200


def test_header_commit_and_result_examples() -> None:
    header = BlockHeader(
        chain_id="carbon-devnet",
        height=1,
        prev_hash=b"\x00" * 32,
        time_ms=1_767_225_600_000,
        proposer=0,
        tx_count=1,
        tx_root=merkle_root([bytes.fromhex(TX_ID_HEX)]),
        state_height=0,
        state_root=b"\x00" * 32,
        results_root=EMPTY_ROOT,
        validators_hash=DEV_SET.set_hash,
        next_validators_hash=DEV_SET.set_hash,
    )
    assert len(codec.encode(header.to_wire())) == 366
    assert header.block_hash.hex() == "82f9141fe00075df2b6afd6c65a02c417169d8ccb9860eba3f4c11a9a02230ba"
    digest = compute_commit_digest("carbon-devnet", 0, 1, header.block_hash)
    assert digest.hex() == "2843eed55f66354802325c27c6d51f2386489c8392fcd6da04777ad11894a852"
    result = TxResult("ok", "")
    assert codec.encode(result.to_wire()).hex() == "83a4636f6465a26f6ba66576656e747390a76d657373616765a0"
    assert codec.encode(result.to_hashed()).hex() == "82a4636f6465a26f6ba66576656e747390"
    assert result.result_hash.hex() == "a130fcd4da94bb1510ae94b343a1568892ce684244e0c7709cefcecf6f9ad3ed"
    assert TxResult("ok", "any explanation").result_hash == result.result_hash  # messages are not hashed


GENESIS_EXAMPLE = {
    "chain_id": "example-devnet",
    "genesis_time": "2026-01-01T00:00:00Z",
    "validators": [
        {
            "org": "mee",
            "node_key": "9a18fc931408bbcf9d9b6bc67abae1de38396f921f432461e130749d33fb4772",
            "peer_address": "127.0.0.1:7000",
            "api_address": "127.0.0.1:8000",
        }
    ],
    "organisations": [
        {
            "id": "mee",
            "name": "MEE",
            "role": "regulator",
            "admin_keys": ["75cf495270841f73e01d01861ec93bce48b2775d55b238d18dfcf8ff3e358b60"],
        }
    ],
}


def test_genesis_hash_example() -> None:
    """docs/protocol/core.md section 8: the hashed map of the smallest genesis, built here from the table, not the code."""
    consensus = {
        "batch_wait_ms": 20,
        "block_bytes_max": 8 * 1024 * 1024,
        "block_txs_max": 2000,
        "checkpoint_interval": 100,
        "clock_drift_max_ms": 5000,
        "pipeline_depth": 2,
        "tx_bytes_max": 65536,
        "tx_validity_blocks_max": 1000,
        "view_timeout_ms": 2000,
    }
    policy = {"proposers": "members", "approvers": "members", "threshold_num": 2, "threshold_den": 3}
    policies = {
        name: {**policy, "threshold_min": 1}
        for name in ("membership", "parameters", "validators", "policies")
    }
    governance = {"members": ["mee"], "policies": policies}
    hashed = {
        **GENESIS_EXAMPLE,
        "consensus": consensus,
        "observers": [],
        "chaincode": {},
        "governance": governance,
    }
    encoded = codec.encode(hashed)
    assert len(encoded) == 948
    assert encoded.hex() == _doc_hex_block(
        "88a8636861696e5f6964ae6578616d706c652d6465766e6574a9636861696e636f6465"
    )
    genesis = parse_genesis(GENESIS_EXAMPLE)
    assert genesis.genesis_hash.hex() == "3c521735c81df898c93a26b24828b1c47f0d26e3c95c280dc6616eb35d54bf62"
    assert genesis.genesis_hash == _h("genesis", encoded)
    assert dev_node_key("validator", 0).public_key.hex() == GENESIS_EXAMPLE["validators"][0]["node_key"]
    assert dev_admin_key("mee").public_key.hex() == GENESIS_EXAMPLE["organisations"][0]["admin_keys"][0]


def _doc_hex_block(start: str) -> str:
    """The contiguous hex block of docs/protocol/core.md that begins with `start` (lines joined up to the next blank)."""
    text = (Path(__file__).parents[2] / "docs" / "protocol" / "core.md").read_text(encoding="utf-8")
    lines = text[text.index("\n" + start) + 1 :].splitlines()
    block = []
    for line in lines:
        if not re.fullmatch(r"[0-9a-f]+", line):
            break
        block.append(line)
    return "".join(block)
