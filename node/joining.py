"""The validators file of a validator that joined after genesis (`carbonchain node join` writes it).

A validator added by governance is not in the genesis, so its node cannot find its own number or its first
peers there. The file says both: the node's number and the validators to link to first (the set in force
and the approved change, as a member of the network reported them when the home was made). It is only a
starting point for links: everything the node accepts is proven by the chain from the genesis on, and once
it has executed the blocks that approved its change, the chain's own set (node/roster.py) replaces it.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import ConfigError
from core.genesis import Genesis
from core.validators import NUMBER_MAX
from p2p.identity import ValidatorEntry

VALIDATORS_FILE = "validators.json"  # its name in the node home
VALIDATORS_FILE_BYTES_MAX = 256 * 1024
_HEX32 = r"^[0-9a-f]{64}$"
_ADDRESS = r"^[A-Za-z0-9.\-\[\]:]{1,253}:[0-9]{1,5}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValidatorLine(_Strict):
    number: int = Field(ge=0, le=NUMBER_MAX)
    node_key: str = Field(pattern=_HEX32)
    peer_address: str = Field(pattern=_ADDRESS)


class ValidatorsFile(_Strict):
    """validators.json in a joining validator's home."""

    carbonchain_validators: int = Field(1, ge=1, le=1, description="the file format version")
    chain_id: str = Field(min_length=1, max_length=64)
    genesis_hash: str = Field(pattern=_HEX32)
    number: int = Field(ge=0, le=NUMBER_MAX, description="this node's validator number")
    validators: list[ValidatorLine] = Field(min_length=1, max_length=NUMBER_MAX + 1)

    def entries(self) -> list[ValidatorEntry]:
        return [ValidatorEntry(v.number, bytes.fromhex(v.node_key), v.peer_address) for v in self.validators]

    def get(self, number: int) -> ValidatorEntry | None:
        return next((entry for entry in self.entries() if entry.number == number), None)


def load_validators_file(path: Path, genesis: Genesis) -> ValidatorsFile:
    """Read and check a validators file against the genesis; ConfigError (one line) for anything wrong."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the validators file {path}: {exc.strerror}") from None
    if len(raw) > VALIDATORS_FILE_BYTES_MAX:
        raise ConfigError(f"{path} is larger than {VALIDATORS_FILE_BYTES_MAX} bytes")
    try:
        document = ValidatorsFile.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        first = str(exc).splitlines()
        raise ConfigError(f"{path} is not a validators file: {' '.join(first[:3])}") from None
    if document.chain_id != genesis.chain_id or document.genesis_hash != genesis.genesis_hash.hex():
        raise ConfigError(f"{path} is for another chain than this genesis ({document.chain_id})")
    numbers = [v.number for v in document.validators]
    if len(set(numbers)) != len(numbers):
        raise ConfigError(f"{path} lists a validator number twice")
    if document.get(document.number) is None:
        raise ConfigError(f"{path} does not list this node's own number {document.number}")
    return document


def write_validators_file(
    path: Path, genesis: Genesis, number: int, validators: list[ValidatorEntry]
) -> None:
    document = ValidatorsFile(
        chain_id=genesis.chain_id,
        genesis_hash=genesis.genesis_hash.hex(),
        number=number,
        validators=[
            ValidatorLine(number=v.number, node_key=v.node_key.hex(), peer_address=v.peer_address)
            for v in sorted(validators, key=lambda entry: entry.number)
        ],
    )
    path.write_text(json.dumps(document.model_dump(), indent=2) + "\n", encoding="utf-8")
