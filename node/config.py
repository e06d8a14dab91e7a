"""The per-node configuration file (`config.toml` in a node's home folder).

Paths in the file are relative to the home folder. Every field has a sane default, so a config needs only the
node's role and index; `carbonchain init-network` writes complete files.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import ConfigError

CONFIG_FILE = "config.toml"
_ADDRESS = r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$"  # host:port, IPv6 in brackets
MAX_CONFIG_BYTES = 256 * 1024


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeSection(_Section):
    role: Literal["validator", "observer"]
    index: int = Field(
        ge=0, le=1023, description="an observer's position in genesis observers; a validator's number"
    )
    key_file: str = "node_key.json"
    # a validator that joined after genesis: its number and first peers (node/joining.py, `node join`)
    validators_file: str = ""
    genesis_file: str = "genesis.json"
    data_dir: str = "data"
    verify_threads: int = Field(
        1, ge=1, le=64, description="threads that verify transaction signatures (1: the event loop's own)"
    )
    # free space below which the node stops ordering (node.diskguard); 0 = eight full blocks, at least 64 MiB
    disk_free_bytes_min: int = Field(0, ge=0, le=1024**4)


class PeerSection(_Section):
    listen_host: str = "127.0.0.1"
    listen_port: int = Field(
        0, ge=0, le=65535, description="0 = the port of this node's genesis peer_address"
    )
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    frame_bytes_max: int = Field(16 * 1024 * 1024, ge=64 * 1024, le=256 * 1024 * 1024)
    ban_duration_ms: int = Field(
        60_000, ge=1, le=24 * 3600 * 1000, description="how long a misbehaving peer is refused"
    )
    # validator index -> "host:port" to dial instead of its genesis peer_address (NAT, a local relay, the
    # fault-injection proxies of the tests); identities are still proven by the handshake
    dial_addresses: dict[Annotated[int, Field(ge=0, le=1023)], Annotated[str, Field(pattern=_ADDRESS)]] = {}


class ApiSection(_Section):
    listen_host: str = "127.0.0.1"
    listen_port: int = Field(0, ge=0, le=65535, description="0 = the port of this node's genesis api_address")
    body_bytes_max: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    event_queue_max: int = Field(10_000, ge=10, le=1_000_000)
    event_replay_blocks_max: int = Field(
        1000, ge=1, le=100_000, description="blocks a /v1/events?from_height= stream may replay"
    )


class MempoolSection(_Section):
    # Pending transactions beyond a few blocks' worth only add latency; past this, clients get 503 and retry.
    txs_max: int = Field(8_000, ge=1, le=10_000_000)
    bytes_max: int = Field(64 * 1024 * 1024, ge=1024, le=4 * 1024 * 1024 * 1024)


class LogSection(_Section):
    format: Literal["text", "json"] = "text"
    level: Literal["debug", "info", "warning", "error"] = "info"


class NodeConfig(_Section):
    node: NodeSection
    peer: PeerSection = PeerSection()
    api: ApiSection = ApiSection()
    mempool: MempoolSection = MempoolSection()
    log: LogSection = LogSection()


def load_config(home: Path) -> NodeConfig:
    """Read and validate `<home>/config.toml`; ConfigError names the field and the reason."""
    path = Path(home) / CONFIG_FILE
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no config file (make a node home with `carbonchain node init`, or a local network "
            "with `carbonchain init-network`)"
        ) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return parse_config(document, source=str(path))


def parse_config(document: Any, *, source: str = "config") -> NodeConfig:
    try:
        return NodeConfig.model_validate(document)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
            for error in exc.errors(include_url=False)
        ]
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None


def write_config(home: Path, config: NodeConfig) -> None:
    path = Path(home) / CONFIG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(config.model_dump(mode="json")), encoding="utf-8")


def resolve(home: Path, relative: str) -> Path:
    """A path from the config, relative to the home folder unless absolute."""
    candidate = Path(relative)
    return candidate if candidate.is_absolute() else Path(home) / candidate
