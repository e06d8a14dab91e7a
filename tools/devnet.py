"""`carbonchain devnet`: a whole local network, one OS process per node, on 127.0.0.1.

The devnet uses the well-known insecure keys of core.devkeys, so its homes can be rebuilt from the genesis
alone. Homes persist under `--home` between runs (the network continues from its last height) unless
`--reset` is given. Ctrl-C or SIGTERM stops every node with SIGTERM (a clean shutdown), then SIGKILL after a
grace period.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from core.devkeys import dev_node_key, is_devnet_chain_id
from core.errors import ConfigError
from core.genesis import Genesis, genesis_to_json
from core.keystore import save_key
from node.config import ApiSection, NodeConfig, NodeSection, PeerSection, write_config

STOP_GRACE_S = 15.0
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
READY_TIMEOUT_S = 60.0


@dataclass
class DevnetNode:
    name: str
    home: Path
    api_url: str
    process: subprocess.Popen[bytes] | None = None


def prepare_homes(genesis: Genesis, root: Path, *, reset: bool) -> list[DevnetNode]:
    """Write (or reuse) one home per node of a devnet genesis; node keys come from the dev labels."""
    if not is_devnet_chain_id(genesis.chain_id):
        raise ConfigError(
            f"chain id {genesis.chain_id!r} is not a devnet; run nodes with `carbonchain node run`"
        )
    if reset and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    genesis_text = genesis_to_json(genesis)
    marker = root / "genesis.json"
    if marker.exists() and marker.read_text(encoding="utf-8") != genesis_text:
        raise ConfigError(f"{root} holds a devnet of another genesis; pass --reset to replace it")
    marker.write_text(genesis_text, encoding="utf-8")
    nodes = []
    members: list[tuple[str, int, str, str, str | None]] = [
        ("validator", i, v.node_key, v.api_address, v.peer_address) for i, v in enumerate(genesis.validators)
    ]
    members += [("observer", j, o.node_key, o.api_address, None) for j, o in enumerate(genesis.observers)]
    for role, index, node_key_hex, api_address, peer_address in members:
        key = dev_node_key(role, index)
        if key.public_key.hex() != node_key_hex:
            raise ConfigError(
                f"{role} {index}'s node key in genesis is not the devnet key for label {role}-{index}"
            )
        name = f"{role}-{index}"
        home = root / name
        api_host, api_port = api_address.rsplit(":", 1)
        peer = PeerSection()
        if peer_address is not None:
            peer_host, peer_port = peer_address.rsplit(":", 1)
            peer = PeerSection(listen_host=peer_host, listen_port=int(peer_port))
        config = NodeConfig(
            node=NodeSection(role="validator" if role == "validator" else "observer", index=index),
            peer=peer,
            api=ApiSection(listen_host=api_host, listen_port=int(api_port)),
        )
        home.mkdir(exist_ok=True)
        (home / "genesis.json").write_text(genesis_text, encoding="utf-8")
        save_key(home / config.node.key_file, key, label=f"devnet {name}")
        write_config(home, config)
        nodes.append(DevnetNode(name, home, f"http://{api_address}"))
    return nodes


def die_with_parent() -> None:
    """Popen preexec_fn: Linux sends this child SIGTERM when the process that started it dies.

    So a devnet, bench or test run that is itself killed (SIGKILL, a CI timeout) leaves no orphaned nodes
    holding ports and data dirs; a clean stop still goes through stop_processes. A no-op off Linux.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getppid()
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def start_nodes(nodes: list[DevnetNode], *, log_format: str = "text") -> None:
    for node in nodes:
        log_file = (node.home / "node.log").open("ab")
        node.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cli",
                "node",
                "run",
                "--home",
                str(node.home),
                "--log-format",
                log_format,
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=os.getcwd(),
            preexec_fn=die_with_parent,
        )
        log_file.close()


def wait_until_live(nodes: list[DevnetNode], *, timeout_s: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    for node in nodes:
        while not is_endpoint_ok(node.api_url, "/healthz"):
            if node.process is not None and node.process.poll() is not None:
                raise ConfigError(
                    f"{node.name} exited with code {node.process.returncode}; see {node.home}/node.log"
                )
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"{node.name} did not answer {node.api_url}/healthz within {timeout_s:.0f} s"
                )
            time.sleep(0.1)


def stop_nodes(nodes: list[DevnetNode], *, grace_s: float = STOP_GRACE_S) -> None:
    stop_processes([n.process for n in nodes if n.process is not None], grace_s)


def stop_processes(processes: Iterable[subprocess.Popen[bytes]], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM every process still running, then SIGKILL those not gone after the grace period."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for process in running:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def supervise(nodes: list[DevnetNode], *, after_ready: Callable[[], None] | None = None) -> int:
    """Run until Ctrl-C/SIGTERM or until a node dies; always stops every node. Returns an exit code."""
    stop_requested = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    previous = signal.signal(signal.SIGTERM, request_stop)
    try:
        wait_until_live(nodes)
        for node in nodes:
            print(f"{node.name:12} {node.api_url}   (log: {node.home / 'node.log'})", flush=True)
        print("devnet running; Ctrl-C stops it", flush=True)
        if after_ready is not None:
            after_ready()
        while not stop_requested:
            for node in nodes:
                if node.process is not None and node.process.poll() is not None:
                    print(
                        f"{node.name} exited with code {node.process.returncode}; stopping the devnet",
                        flush=True,
                    )
                    return 1
            time.sleep(0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        print("stopping nodes...", flush=True)
        stop_nodes(nodes)
        signal.signal(signal.SIGTERM, previous)


def fetch_status(api_url: str) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(api_url + "/v1/status", timeout=2) as response:
            status: dict[str, object] = json.loads(response.read())
            return status
    except (urllib.error.URLError, OSError, ValueError):
        return None


def is_endpoint_ok(api_url: str, path: str) -> bool:
    """True when GET api_url + path answers 200 within a second (e.g. /healthz, /readyz)."""
    try:
        with urllib.request.urlopen(api_url + path, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
