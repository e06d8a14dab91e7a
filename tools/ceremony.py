"""The genesis ceremony: a consortium starts a chain without anyone holding another member's private key.

1. Each member, on its own machine, makes its keys and a public *member file* (`create_member`,
   `write_member`): admin keys, a client key, and a node key per node it will run, with the node's
   addresses. Private keys stay in the member's folder (mode 0600, optionally passphrase-encrypted).
2. A coordinator assembles the genesis from the member files and the consortium's parameters
   (`assemble_genesis`); member files are public, so they can travel by any channel.
3. Every member checks the genesis against its own member file (`locate_member`): its organisation, keys
   and nodes must be there exactly as it made them; then the members compare the genesis hash out of band.
4. Each node operator makes a node home from the genesis and its own node key (`write_node_home`).

Every input file is validated strictly (unknown or repeated fields, wrong types, duplicates across
members); problems are ConfigError/GenesisError with one line naming the file and the field.
docs/OPERATIONS.md walks through it for three organisations on three hosts.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import ConfigError, GenesisError
from core.genesis import Address, Genesis, Organisation, PublicKeyHex, genesis_to_json, parse_genesis
from core.keys import SigningKey
from core.keystore import save_key
from node.config import ApiSection, NodeConfig, NodeSection, PeerSection, write_config
from node.joining import VALIDATORS_FILE, write_validators_file
from node.schemas import describe_validation_error
from p2p.identity import ValidatorEntry

MEMBER_FILE = "member.json"
MEMBER_FILE_VERSION = 1
MEMBER_FILE_BYTES_MAX = 64 * 1024
PARAMS_FILE_BYTES_MAX = 256 * 1024
KEYS_DIR = "keys"
NODES_PER_MEMBER_MAX = 16


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class MemberNode(_Strict):
    role: Literal["validator", "observer"]
    node_key: PublicKeyHex
    peer_address: Address | None = None  # validators only: where other nodes connect
    api_address: Address

    @model_validator(mode="after")
    def _peer_address_for_validators(self) -> MemberNode:
        if self.role == "validator" and self.peer_address is None:
            raise ValueError("a validator needs a peer_address")
        if self.role == "observer" and self.peer_address is not None:
            raise ValueError("an observer has no peer_address (it only dials validators)")
        return self


class MemberFile(_Strict):
    """The public part of one member: what the coordinator needs, nothing secret."""

    carbonchain_member: Literal[1] = Field(description="the member file format version")
    org: Organisation
    client_keys: list[PublicKeyHex] = Field(default_factory=list, max_length=16)  # enrolled on chain later
    nodes: list[MemberNode] = Field(default_factory=list, max_length=NODES_PER_MEMBER_MAX)

    @model_validator(mode="after")
    def _keys_distinct(self) -> MemberFile:
        keys = [*self.org.admin_keys, *self.client_keys, *(node.node_key for node in self.nodes)]
        if len(set(keys)) != len(keys):
            raise ValueError("a key appears twice (admin, client and node keys must all differ)")
        return self


@dataclass(frozen=True)
class MemberKeys:
    """The private keys `create_member` made; only `write_member` sees them, and only to save them."""

    admin: SigningKey
    client: SigningKey
    nodes: tuple[SigningKey, ...]


def create_member(
    org_id: str,
    name: str,
    role: str,
    *,
    validators: Sequence[tuple[str, str]] = (),
    observers: Sequence[str] = (),
) -> tuple[MemberFile, MemberKeys]:
    """Fresh keys and the member file naming them; `validators` are (peer, api) addresses."""
    admin, client = SigningKey.generate(), SigningKey.generate()
    node_keys = tuple(SigningKey.generate() for _ in range(len(validators) + len(observers)))
    nodes: list[dict[str, Any]] = [
        {"role": "validator", "node_key": key.public_key.hex(), "peer_address": peer, "api_address": api}
        for key, (peer, api) in zip(node_keys, validators, strict=False)
    ]
    nodes += [
        {"role": "observer", "node_key": key.public_key.hex(), "api_address": api}
        for key, api in zip(node_keys[len(validators) :], observers, strict=True)
    ]
    document = {
        "carbonchain_member": MEMBER_FILE_VERSION,
        "org": {"id": org_id, "name": name, "role": role, "admin_keys": [admin.public_key.hex()]},
        "client_keys": [client.public_key.hex()],
        "nodes": nodes,
    }
    return parse_member(document, source="the new member"), MemberKeys(admin, client, node_keys)


def key_file_names(member: MemberFile) -> dict[str, str]:
    """Where each private key lives in a member folder: kind -> path relative to the folder."""
    names = {"admin": f"{KEYS_DIR}/admin.json", "client": f"{KEYS_DIR}/client.json"}
    for index, _ in enumerate(member.nodes):
        names[f"node {index}"] = f"{KEYS_DIR}/node-{index}.json"
    return names


def write_member(
    folder: Path,
    member: MemberFile,
    keys: MemberKeys,
    *,
    passphrase: str | None,
    encrypt_node_keys: bool = False,
) -> dict[str, Path]:
    """Write the private keys (mode 0600, in a 0700 folder) and the public member file; returns kind ->
    key file. Admin and client keys are encrypted when a passphrase is given; node keys only if asked
    (a node then needs $CARBONCHAIN_PASSPHRASE to start)."""
    folder = Path(folder)
    if (folder / MEMBER_FILE).exists():
        raise ConfigError(
            f"{folder / MEMBER_FILE} exists: this folder already holds a member's keys (use another --dir)"
        )
    keys_dir = folder / KEYS_DIR
    keys_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(keys_dir, 0o700)
    names = key_file_names(member)
    org = member.org.id
    written = {
        "admin": _save(folder / names["admin"], keys.admin, passphrase, f"{org} admin"),
        "client": _save(folder / names["client"], keys.client, passphrase, f"{org} client"),
    }
    for index, (node, key) in enumerate(zip(member.nodes, keys.nodes, strict=True)):
        node_passphrase = passphrase if encrypt_node_keys else None
        kind = f"node {index}"
        written[kind] = _save(folder / names[kind], key, node_passphrase, f"{org} {node.role} node {index}")
    (folder / MEMBER_FILE).write_text(member_to_json(member), encoding="utf-8")
    return written


def _save(path: Path, key: SigningKey, passphrase: str | None, label: str) -> Path:
    save_key(path, key, passphrase=passphrase, label=label)
    return path


def member_to_json(member: MemberFile) -> str:
    document = member.model_dump(mode="json", exclude_none=True)
    return json.dumps(document, indent=2) + "\n"


def parse_member(document: Any, *, source: str) -> MemberFile:
    try:
        return MemberFile.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(f"{source}: " + describe_validation_error(exc, unknown="unknown field")) from None


def load_member(path: Path) -> MemberFile:
    """A member file, validated strictly; ConfigError with one line naming the file and the problem."""
    return parse_member(_read_json(Path(path), MEMBER_FILE_BYTES_MAX, "member file"), source=str(path))


def load_params(path: Path) -> dict[str, Any]:
    """A JSON object of parameters (consensus or chaincode) for `assemble_genesis`."""
    document = _read_json(Path(path), PARAMS_FILE_BYTES_MAX, "parameter file")
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: a parameter file is a JSON object")
    return document


def _read_json(path: Path, bytes_max: int, what: str) -> Any:
    try:
        if path.stat().st_size > bytes_max:
            raise ConfigError(f"{path}: larger than {bytes_max} bytes: not a {what}")
        return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_repeats(path))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a JSON {what} ({str(exc).splitlines()[0]})") from None


def _no_repeats(path: Path) -> Any:
    def build(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        document = dict(pairs)
        if len(document) != len(pairs):
            repeated = sorted({name for name, _ in pairs if [n for n, _ in pairs].count(name) > 1})
            raise ConfigError(f"{path}: the field {repeated[0]!r} is given twice in one object")
        return document

    return build


# --- assembly ---------------------------------------------------------------------------------------------


def assemble_genesis(
    members: list[tuple[str, MemberFile]],
    *,
    chain_id: str,
    genesis_time: str,
    consensus: dict[str, Any] | None = None,
    chaincode: dict[str, Any] | None = None,
) -> Genesis:
    """The genesis of these members (validators and observers in the order of the files, then of their
    nodes); `members` pairs each file's name (for messages) with its content."""
    if not members:
        raise ConfigError("no member files: pass --member FILE once per member")
    _check_distinct(members)
    validators, observers, organisations = [], [], []
    for _, member in members:
        organisations.append(member.org.model_dump(mode="json"))
        for node in member.nodes:
            entry = {"org": member.org.id, "node_key": node.node_key, "api_address": node.api_address}
            if node.role == "validator":
                validators.append({**entry, "peer_address": node.peer_address})
            else:
                observers.append(entry)
    if not validators:
        raise ConfigError("no member runs a validator: at least one member file needs a validator node")
    document = {
        "chain_id": chain_id,
        "genesis_time": genesis_time,
        "consensus": consensus or {},
        "validators": validators,
        "observers": observers,
        "organisations": organisations,
        "chaincode": chaincode or {"carbon": {}},
    }
    return parse_genesis(document)


def _check_distinct(members: list[tuple[str, MemberFile]]) -> None:
    """Two member files must not share an organisation id, a key or an address: name both files."""
    sources = [source for source, _ in members]
    repeated = sorted({source for source in sources if sources.count(source) > 1})
    if repeated:
        raise ConfigError(f"{repeated[0]} is given twice")
    seen: dict[tuple[str, str], str] = {}
    for source, member in members:
        claims = [("organisation id", member.org.id)]
        claims += [("key", key) for key in (*member.org.admin_keys, *member.client_keys)]
        for node in member.nodes:
            claims += [("key", node.node_key), ("address", node.api_address)]
            if node.peer_address is not None:
                claims.append(("address", node.peer_address))
        for claim in claims:
            other = seen.setdefault(claim, source)
            if other != source:
                raise ConfigError(f"{source} and {other} both name the {claim[0]} {claim[1]}")


# --- checking a genesis against one's own member file -------------------------------------------------------


@dataclass(frozen=True)
class NodePlace:
    role: str  # "validator" or "observer"
    index: int  # its position in the genesis list of that role
    node: MemberNode


def locate_member(genesis: Genesis, member: MemberFile) -> list[NodePlace]:
    """Check that the genesis has this member exactly as its member file says: the organisation (name,
    role, admin keys) and every node (key and addresses) once; returns where each node is.
    GenesisError names the first difference."""
    org = genesis.organisation(member.org.id)
    if org is None:
        raise GenesisError(f"the genesis has no organisation {member.org.id!r}")
    if org != member.org:
        raise GenesisError(
            f"the genesis describes organisation {member.org.id!r} differently: "
            + _difference(org.model_dump(mode="json"), member.org.model_dump(mode="json"))
        )
    places = []
    listed: dict[str, list[tuple[str, str, str, str | None]]] = {  # role -> (key, org, api, peer)
        "validator": [(v.node_key, v.org, v.api_address, v.peer_address) for v in genesis.validators],
        "observer": [(o.node_key, o.org, o.api_address, None) for o in genesis.observers],
    }
    for node in member.nodes:
        entries = listed[node.role]
        matches = [i for i, entry in enumerate(entries) if entry[0] == node.node_key]
        if not matches:
            raise GenesisError(f"the genesis has no {node.role} with our node key {node.node_key}")
        index = matches[0]
        _, org_id, api_address, peer_address = entries[index]
        if org_id != member.org.id:
            raise GenesisError(f"our {node.role} key is listed for organisation {org_id!r}")
        if (api_address, peer_address) != (node.api_address, node.peer_address):
            raise GenesisError(f"{node.role} {index} has other addresses than our member file says")
        places.append(NodePlace(node.role, index, node))
    ours = {node.node_key for node in member.nodes}
    foreign = [key for entries in listed.values() for key, org_id, _, _ in entries if org_id == member.org.id]
    extra = sorted(set(foreign) - ours)
    if extra:
        raise GenesisError(f"the genesis lists a node of {member.org.id!r} that is not ours: key {extra[0]}")
    return places


def _difference(theirs: dict[str, Any], ours: dict[str, Any]) -> str:
    for name in ours:
        if theirs.get(name) != ours.get(name):
            return f"{name} is {theirs.get(name)!r}, our member file says {ours.get(name)!r}"
    return "(no field differs)"


# --- node homes ---------------------------------------------------------------------------------------------


def write_node_home(
    home: Path,
    genesis: Genesis,
    place: NodePlace,
    node_key_file: Path,
    *,
    peer_listen_host: str,
    api_listen_host: str,
    validators: list[ValidatorEntry] | None = None,
) -> Path:
    """A node home: config.toml for this node's place, the genesis, and a copy of its own node key. With
    `validators`, the home of a validator that joins after genesis (place.index is its number): its
    validators file (node/joining.py), and listen ports from its member file (the genesis has none)."""
    home = Path(home)
    if home.exists() and any(home.iterdir()):
        raise ConfigError(f"{home} is not empty: a node home is made once (use another --home)")
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    role: Literal["validator", "observer"] = "validator" if place.role == "validator" else "observer"
    node = NodeSection(role=role, index=place.index)
    peer = PeerSection(listen_host=peer_listen_host)
    api = ApiSection(listen_host=api_listen_host)
    if validators is not None:
        assert place.node.peer_address is not None  # a validator's member entry has one
        node = NodeSection(role=role, index=place.index, validators_file=VALIDATORS_FILE)
        peer = PeerSection(listen_host=peer_listen_host, listen_port=_port(place.node.peer_address))
        api = ApiSection(listen_host=api_listen_host, listen_port=_port(place.node.api_address))
        write_validators_file(home / VALIDATORS_FILE, genesis, place.index, validators)
    config = NodeConfig(node=node, peer=peer, api=api)
    (home / config.node.genesis_file).write_text(genesis_to_json(genesis), encoding="utf-8")
    key_path = home / config.node.key_file
    shutil.copyfile(node_key_file, key_path)
    os.chmod(key_path, 0o600)
    write_config(home, config)
    return home


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])
