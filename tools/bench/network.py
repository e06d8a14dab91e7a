"""A throwaway benchmark network: real node processes on 127.0.0.1, their CPU and memory, and agreement.

The network lives in a fresh temporary folder with free ports and the insecure devnet keys (the bench signs
as every organisation). `BenchNetwork` is a context manager that stops every process it started, SIGTERM
first and SIGKILL after a grace period, also on errors and Ctrl-C. CPU time and peak RSS come from
/proc/<pid>/stat and /proc/<pid>/status, so no extra dependency is needed.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from core.errors import ConfigError
from tools.devnet import die_with_parent, is_endpoint_ok, stop_processes
from tools.netinit import DEVNET_GENESIS_TIME, NetworkPlan, build_network, write_network

HOST = "127.0.0.1"  # the bench never targets anything else
CHAIN_ID = "bench-devnet"
READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 15.0
# Long enough that pre-signed transactions stay valid for a whole run at hundreds of blocks a second.
BENCH_CONSENSUS: dict[str, Any] = {"tx_validity_blocks_max": 20_000}
EVENT_QUEUE_MAX = 1_000_000  # the bench's own event subscriber must never be dropped as a slow consumer
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ProcessSample:
    cpu_s: float  # user + system CPU seconds since the process started
    peak_rss_bytes: int  # VmHWM: the resident set's high-water mark


def read_process_sample(pid: int) -> ProcessSample | None:
    """CPU seconds and peak RSS of a live process, None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
    cpu_s = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime
    peak_kb = 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            peak_kb = int(line.split()[1])
    return ProcessSample(cpu_s, peak_kb * 1024)


PORT_SPAN = 200  # a network uses base .. base+count-1, base+100 .., and base+180 ..
_EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_ports() -> tuple[int, int]:
    """The range the kernel picks outgoing connections' local ports from (Linux; the IANA range elsewhere)."""
    try:
        low, high = (int(part) for part in _EPHEMERAL_RANGE_FILE.read_text(encoding="ascii").split())
    except (OSError, ValueError):
        return 49152, 65535
    return low, high


def find_free_port_base(count: int) -> int:
    """A base port such that base .. base+count-1, +100 and +180 are free now on 127.0.0.1.

    The ports lie outside the ephemeral range: there, any outgoing connection (a node dialling a peer, a
    test's HTTP client) may take a port between our check and the node's bind (seen in CI).
    """
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    ephemeral_low, ephemeral_high = _ephemeral_ports()
    candidates = [
        base
        for base in range(10000, 65000 - PORT_SPAN, 10)
        if base + PORT_SPAN <= ephemeral_low or base > ephemeral_high
    ]
    if not candidates:
        raise ConfigError(f"no ports outside the ephemeral range {ephemeral_low}-{ephemeral_high}")
    for _ in range(200):
        base = rng.choice(candidates)
        ports = [base + i for i in range(count)] + [base + 100 + i for i in range(count)]
        ports += [base + 180 + i for i in range(4)]
        if all(_is_free(port) for port in ports):
            return base
    raise ConfigError("no free port range found on 127.0.0.1")


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


class BenchNetwork:
    """validators + observers as OS processes; use as a context manager."""

    def __init__(
        self,
        *,
        validators: int,
        observers: int,
        consensus: dict[str, Any] | None = None,
        workdir: Path | None = None,
        log_level: str = "info",
    ) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="carbonchain-bench-", dir=workdir))
        self.plan: NetworkPlan = build_network(
            validators=validators,
            observers=observers,
            chain_id=CHAIN_ID,
            genesis_time=DEVNET_GENESIS_TIME,
            host=HOST,
            base_port=find_free_port_base(validators),
            insecure_dev_keys=True,
            consensus={**BENCH_CONSENSUS, **(consensus or {})},
        )
        for name, config in list(self.plan.node_configs.items()):
            self.plan.node_configs[name] = config.model_copy(
                update={
                    "api": config.api.model_copy(update={"event_queue_max": EVENT_QUEUE_MAX}),
                    "log": config.log.model_copy(update={"level": log_level}),
                }
            )
        self.homes = {home.name: home for home in write_network(self.plan, self.root / "net")}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.keep = False  # keep the folder (node logs) after stopping, e.g. after a failure
        self.node_env: dict[str, str] = {}  # more environment for the node processes

    @property
    def genesis(self) -> Any:
        return self.plan.genesis

    @property
    def validator_urls(self) -> list[str]:
        return [f"http://{v.api_address}" for v in self.plan.genesis.validators]

    @property
    def observer_urls(self) -> list[str]:
        return [f"http://{o.api_address}" for o in self.plan.genesis.observers]

    @property
    def urls(self) -> dict[str, str]:
        names = [f"validator-{i}" for i in range(len(self.validator_urls))]
        names += [f"observer-{j}" for j in range(len(self.observer_urls))]
        return dict(zip(names, self.validator_urls + self.observer_urls, strict=True))

    def __enter__(self) -> BenchNetwork:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if kind is None and not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def start(self) -> None:
        for name in self.homes:
            self.start_node(name)
        deadline = time.monotonic() + READY_TIMEOUT_S
        for name, url in self.urls.items():
            while not is_endpoint_ok(url, "/readyz"):
                process = self.processes[name]
                if process.poll() is not None:
                    raise ConfigError(f"{name} exited with code {process.returncode}; see {self.log(name)}")
                if time.monotonic() > deadline:
                    raise ConfigError(
                        f"{name} not ready within {READY_TIMEOUT_S:.0f} s; see {self.log(name)}"
                    )
                time.sleep(0.1)

    def start_node(self, name: str) -> None:
        """(Re)start one node process, without waiting for it to be ready."""
        log = (self.homes[name] / "node.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "cli", "node", "run", "--home", str(self.homes[name])],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.node_env},
            preexec_fn=die_with_parent,
        )
        log.close()

    def stop_node(self, name: str) -> None:
        """SIGTERM one node and wait for it to exit (SIGKILL after the grace period)."""
        process = self.processes[name]
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop(self) -> None:
        stop_processes(self.processes.values())
        self.processes.clear()

    def log(self, name: str) -> Path:
        return self.homes[name] / "node.log"

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def dead_nodes(self) -> list[str]:
        return [name for name, process in self.processes.items() if process.poll() is not None]

    def sample(self) -> dict[str, ProcessSample]:
        samples = {}
        for name, process in self.processes.items():
            sample = read_process_sample(process.pid)
            if sample is not None:
                samples[name] = sample
        return samples
