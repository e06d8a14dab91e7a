"""A real network for integration tests: one OS process per node on 127.0.0.1, real LevelDB, real sockets.

Every process a Cluster starts is stopped when the cluster closes (SIGKILL if SIGTERM is not enough), even
when the test fails; node logs are kept in the test's tmp dir and their tails printed on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp

from client import CarbonClient, Signer, TxStatus
from core.devkeys import dev_admin_key, dev_client_key
from core.keys import SigningKey
from node.config import load_config, write_config
from p2p.identity import PeerDirectory, PeerId, compute_dial_targets
from p2p.tls import TlsConfig
from tests.integration.faultproxy import FaultNetwork
from tests.tlskit import write_self_signed_cert
from tools.bench.network import find_free_port_base
from tools.devnet import die_with_parent
from tools.netinit import DEVNET_GENESIS_TIME, NetworkPlan, build_network, write_network

REPO = Path(__file__).resolve().parents[2]
# CARBONCHAIN_TEST_TLS=1 runs every multi-process test with TLS between the nodes.
TLS_BY_DEFAULT = os.environ.get("CARBONCHAIN_TEST_TLS", "") not in ("", "0")
FAST_CONSENSUS = {
    "batch_wait_ms": 10,
    "view_timeout_ms": 1000,
    "checkpoint_interval": 10,
    "pipeline_depth": 2,
    "block_txs_max": 500,
}


class Cluster:
    def __init__(
        self,
        root: Path,
        *,
        validators: int = 4,
        observers: int = 1,
        consensus: dict[str, Any] | None = None,
        tls: bool = TLS_BY_DEFAULT,
        node_env: dict[str, dict[str, str]] | None = None,
    ):
        self.root = root
        self.node_env: dict[str, dict[str, str]] = dict(
            node_env or {}
        )  # name -> extra environment of its process
        base = find_free_port_base(validators)
        self.plan: NetworkPlan = build_network(
            validators=validators,
            observers=observers,
            chain_id="itest-devnet",
            genesis_time=DEVNET_GENESIS_TIME,
            base_port=base,
            insecure_dev_keys=True,
            consensus={**FAST_CONSENSUS, **(consensus or {})},
        )
        self.homes = {home.name: home for home in write_network(self.plan, root / "net")}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._api_urls: dict[str, str] = {}  # nodes added after the genesis
        self.genesis = self.plan.genesis
        self.tls = tls
        self._tls_config: TlsConfig | None = None
        if tls:
            cert, key = write_self_signed_cert(root / "tls")
            self._tls_config = TlsConfig(cert, key, ca_file=cert)
            for name in self.homes:  # one certificate, its own CA, for every node: mutual TLS
                self._update_peer_config(name, tls_cert=str(cert), tls_key=str(key), tls_ca=str(cert))

    @property
    def names(self) -> list[str]:
        return list(self.homes)

    @property
    def validator_names(self) -> list[str]:
        return [name for name in self.homes if name.startswith("validator")]

    def add_node(self, name: str, home: Path, api_url: str) -> None:
        """A node made outside the genesis (a validator that joined later, `node join`): started and
        stopped like the others."""
        self.homes[name] = home
        self._api_urls[name] = api_url

    def api_url(self, name: str) -> str:
        if name in self._api_urls:
            return self._api_urls[name]
        role, index = name.rsplit("-", 1)
        members = self.genesis.validators if role == "validator" else self.genesis.observers
        return f"http://{members[int(index)].api_address}"

    def peer_address(self, index: int) -> tuple[str, int]:
        host, port = self.genesis.validators[index].peer_address.rsplit(":", 1)
        return host, int(port)

    def peer_url(self, index: int, scheme: str = "ws") -> str:
        """The peer port of validator `index` as a URL: ws/http, or wss/https when the cluster runs TLS."""
        host, port = self.peer_address(index)
        return f"{scheme}{'s' if self.tls else ''}://{host}:{port}/p2p"

    def peer_ssl(self) -> ssl.SSLContext | bool:
        """What aiohttp needs to reach a peer port: a context holding the nodes' certificate under TLS."""
        if self._tls_config is None:
            return True
        return self._tls_config.create_client_context()

    def update_config(self, name: str, section: str, **changes: Any) -> None:
        """Change fields of one section of a node's config.toml (before the node starts)."""
        home = self.homes[name]
        config = load_config(home)
        updated = getattr(config, section).model_copy(update=changes)
        write_config(home, config.model_copy(update={section: updated}))

    def _update_peer_config(self, name: str, **changes: Any) -> None:
        self.update_config(name, "peer", **changes)

    def route_through(self, proxies: FaultNetwork) -> None:
        """Give every directed link its own proxy and make the dialler dial the proxy (before start())."""
        directory = PeerDirectory(self.genesis)
        for name in self.homes:
            role, index = name.rsplit("-", 1)
            local = PeerId.validator(int(index)) if role == "validator" else PeerId.observer(int(index))
            dial: dict[int, str] = {}
            for target in compute_dial_targets(directory, local):
                port = proxies.add_link(f"{name}->{target}", self.peer_address(target.index))
                dial[target.index] = f"127.0.0.1:{port}"
            self._update_peer_config(name, dial_addresses=dial)

    # --- processes ------------------------------------------------------------------------------------

    def start(self, *names: str) -> None:
        for name in names or self.names:
            home = self.homes[name]
            log = (home / "node.log").open("ab")
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "cli", "node", "run", "--home", str(home)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.node_env.get(name, {})},
                preexec_fn=die_with_parent,
            )
            log.close()

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        process.kill()
        process.wait()

    def terminate(self, name: str, timeout_s: float = 15.0) -> int:
        process = self.processes.pop(name)
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout=timeout_s)

    def pause(self, name: str) -> None:
        self.processes[name].send_signal(signal.SIGSTOP)

    def resume(self, name: str) -> None:
        self.processes[name].send_signal(signal.SIGCONT)

    def check_alive(self) -> None:
        """Fail at once, with its log, if a node this cluster started has exited on its own."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with code {process.returncode}:\n{self.log_tail(name)}")

    def is_running(self, name: str) -> bool:
        process = self.processes.get(name)
        return process is not None and process.poll() is None

    def close(self) -> None:
        for name, process in list(self.processes.items()):
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGCONT)
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            del self.processes[name]

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.homes[name] / "node.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def assert_no_tracebacks(self) -> None:
        """Bad input, crashes and restarts must be handled, never end in an unexpected exception."""
        for name, home in self.homes.items():
            log = home / "node.log"
            text = log.read_text(errors="replace") if log.exists() else ""
            if "Traceback" in text:
                start = text.index("Traceback")
                raise AssertionError(
                    f"{name} logged an exception:\n{text[max(0, start - 300) : start + 2500]}"
                )

    # --- keys -----------------------------------------------------------------------------------------

    @staticmethod
    def admin_key(org: str) -> SigningKey:
        return dev_admin_key(org)

    @staticmethod
    def client_key(org: str) -> SigningKey:
        return dev_client_key(org)


@contextlib.contextmanager
def running_cluster(
    root: Path,
    *,
    only: tuple[str, ...] = (),
    proxies: FaultNetwork | None = None,
    prepare: Callable[[Cluster], None] | None = None,
    **kwargs: Any,
) -> Iterator[Cluster]:
    """A started cluster (every node, or `only` those named), its links through `proxies` if given, after
    `prepare(cluster)` changed configs or environments; closed and checked for tracebacks at the end."""
    cluster = Cluster(root, **kwargs)
    if proxies is not None:
        cluster.route_through(proxies)
    if prepare is not None:
        prepare(cluster)
    try:
        cluster.start(*only)
        yield cluster
        cluster.close()
        cluster.assert_no_tracebacks()
    except BaseException:
        for name in cluster.names:
            print(f"----- {name} log tail -----\n{cluster.log_tail(name)}")
        raise
    finally:
        cluster.close()


async def wait_until(
    predicate: Any, *, timeout_s: float, interval_s: float = 0.1, what: str = "condition"
) -> Any:
    """Poll an async predicate until it returns a truthy value: the only event a separate process offers."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(interval_s)


async def get_status(session: aiohttp.ClientSession, url: str) -> dict[str, Any] | None:
    try:
        async with session.get(url + "/v1/status", timeout=aiohttp.ClientTimeout(total=2)) as response:
            if response.status != 200:
                return None
            status: dict[str, Any] = await response.json()
            return status
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None


_refs = itertools.count(1)


def deposit(signer: Signer, amount_fen: int = 100) -> Any:
    return signer.build(
        "deposit_cash", {"org": "ent-a", "amount_fen": amount_fen, "bank_ref": f"REF-{next(_refs)}"}
    )


async def bank_signer(client: CarbonClient) -> Signer:
    return await client.signer(org="bank", key=dev_admin_key("bank"))


async def wait_for_agreement(
    cluster: Cluster, names: list[str], *, min_height: int, timeout_s: float = 30
) -> dict[str, Any]:
    """Wait until every named node reports the same height (>= min_height), block hash and state root."""

    async def agreed() -> dict[str, Any] | None:
        cluster.check_alive()
        async with aiohttp.ClientSession() as session:
            statuses = [await get_status(session, cluster.api_url(name)) for name in names]
        if any(s is None for s in statuses):
            return None
        triples = {(s["height"], s["last_block_hash"], s["state_root"]) for s in statuses if s}
        if len(triples) == 1 and statuses[0] and statuses[0]["height"] >= min_height:
            return statuses[0]
        return None

    result: dict[str, Any] = await wait_until(agreed, timeout_s=timeout_s, what=f"agreement of {names}")
    return result


async def wait_all_live(cluster: Cluster, names: list[str] | None = None) -> None:
    async def live() -> bool:
        cluster.check_alive()
        async with aiohttp.ClientSession() as session:
            return all(
                [await get_status(session, cluster.api_url(n)) is not None for n in names or cluster.names]
            )

    await wait_until(live, timeout_s=30, what="nodes to answer")


async def wait_linked(cluster: Cluster, name: str, *, timeout_s: float = 30) -> None:
    """Wait until validator `name` has a link to every other node of the cluster."""

    async def linked() -> bool:
        cluster.check_alive()
        async with aiohttp.ClientSession() as session:
            status = await get_status(session, cluster.api_url(name))
        return status is not None and status["peers"] == len(cluster.names) - 1

    await wait_until(linked, timeout_s=timeout_s, what=f"{name} linked to every node")


async def commit_waves(
    cluster: Cluster, names: list[str], *, seconds: float, per_wave: int = 5, timeout_s: float = 30
) -> dict[str, TxStatus]:
    """For `seconds` (at least one wave): submit `per_wave` deposits to each named node in turn, and wait for
    them; every wave must commit within `timeout_s`. Returns the acknowledged statuses."""
    committed: dict[str, TxStatus] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    wave = 0
    while wave == 0 or loop.time() < deadline:
        async with CarbonClient(cluster.api_url(names[wave % len(names)])) as client:
            signer = await bank_signer(client)
            tx_ids = [await client.submit(deposit(signer)) for _ in range(per_wave)]
            statuses = await client.wait_for_commits(tx_ids, timeout_s=timeout_s)
        assert all(status.is_ok for status in statuses.values()), statuses
        committed.update(statuses)
        wave += 1
    return committed


async def assert_committed_everywhere(
    cluster: Cluster, names: list[str], committed: dict[str, TxStatus]
) -> None:
    """Every acknowledged transaction is committed on every node, at the same height and with the same code."""
    highest = max(status.height or 0 for status in committed.values())
    await wait_for_agreement(cluster, names, min_height=highest, timeout_s=60)
    for name in names:
        async with CarbonClient(cluster.api_url(name)) as client:
            for tx_id, status in committed.items():
                again = await client.get_transaction(tx_id)
                assert (again.height, again.index, again.code) == (
                    status.height,
                    status.index,
                    status.code,
                ), (
                    name,
                    tx_id,
                )
