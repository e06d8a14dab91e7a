"""The genesis ceremony of docs/OPERATIONS.md, run as written for three organisations on three "hosts"
(one directory each), with the doc's addresses mapped to free ports on 127.0.0.1.

Every command a prompt `host$` shows runs in that host's directory (`carbonchain ...` through the CLI entry
point, anything else through bash; `scp FILE host:PATH` copies between the directories) and must print what
the page shows, up to keys, hashes and heights. Then: each directory holds only its own organisation's
private keys, all mode 0600; the nodes run as real processes; and the page's transactions commit (the bank's
client key, enrolled by its admin, is usable).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from tests.integration.cluster import REPO
from tools.bench.network import find_free_port_base
from tools.devnet import die_with_parent, stop_processes

pytestmark = pytest.mark.timeout(120)
HOSTS = {"mee": "10.0.0.1", "bank": "10.0.0.2", "power-1": "10.0.0.3"}
PEER_PORT, API_PORT = 7100, 7200
_HEX = re.compile(r"[0-9a-f]{16,}")
_HEIGHT = re.compile(r"height \d+")


@dataclass
class Step:
    host: str
    command: str
    expected: list[str]


def ceremony_steps() -> list[Step]:
    """The console blocks of the ceremony section, as (host, command, expected output) in page order."""
    text = (REPO / "docs" / "OPERATIONS.md").read_text(encoding="utf-8")
    section = text[text.index("## Setting up a network") : text.index("## A local network in one folder")]
    steps: list[Step] = []
    for block in re.findall(r"```console\n(.*?)```", section, flags=re.S):
        lines = block.splitlines()
        index = 0
        while index < len(lines):
            prompt = re.match(r"^([a-z0-9-]+)\$ (.*)$", lines[index])
            assert prompt is not None, f"a console block line without a prompt: {lines[index]!r}"
            host, command = prompt.group(1), prompt.group(2)
            while command.endswith("\\"):
                index += 1
                command = command[:-1] + " " + lines[index].strip()
            index += 1
            expected = []
            while index < len(lines) and not re.match(r"^[a-z0-9-]+\$ ", lines[index]):
                expected.append(lines[index])
                index += 1
            steps.append(Step(host, command, expected))
    return steps


def normalise(lines: list[str]) -> list[str]:
    return [_HEIGHT.sub("height N", _HEX.sub("<hex>", line)).rstrip() for line in lines if line.strip()]


class Hosts:
    """Three directories standing for three machines, and the doc's addresses mapped to local ports."""

    def __init__(self, root: Path) -> None:
        self.root = root
        base = find_free_port_base(2 * len(HOSTS))
        self.ports = {
            host: (base + i, base + len(HOSTS) + i) for i, host in enumerate(HOSTS)
        }  # host -> (peer port, API port)
        for host in HOSTS:
            (root / host).mkdir()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def to_local(self, host: str, text: str) -> str:
        for other, ip in HOSTS.items():
            peer, api = self.ports[other]
            text = text.replace(f"{ip}:{PEER_PORT}", f"127.0.0.1:{peer}").replace(
                f"{ip}:{API_PORT}", f"127.0.0.1:{api}"
            )
        return text.replace(f"http://127.0.0.1:{API_PORT}", f"http://127.0.0.1:{self.ports[host][1]}")

    def to_doc(self, text: str) -> str:
        for host, ip in HOSTS.items():
            peer, api = self.ports[host]
            text = text.replace(f"127.0.0.1:{peer}", f"{ip}:{PEER_PORT}").replace(
                f"127.0.0.1:{api}", f"{ip}:{API_PORT}"
            )
        return text

    def run(self, step: Step, monkeypatch: pytest.MonkeyPatch) -> list[str]:
        """Run one step in its host's directory; returns what it printed, in the doc's addresses."""
        cwd = self.root / step.host
        command = self.to_local(step.host, step.command)
        words = shlex.split(command)
        if words[0] == "scp":
            source, target = words[1], words[2]
            target_host, target_path = target.split(":", 1)
            destination = self.root / target_host / target_path
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cwd / source, destination)
            return []
        if words[:3] == ["carbonchain", "node", "run"]:
            self.start_node(step.host, cwd, words[3:])
            return []
        if words[0] == "carbonchain":
            self.wait_until_ready()
            monkeypatch.chdir(cwd)
            result = CliRunner().invoke(main, words[1:], catch_exceptions=False)
            assert result.exit_code == 0, f"{step.host}$ {command}\n{result.output}"
            return self.to_doc(result.output).splitlines()
        done = subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"{step.host}$ {command}\n{done.stdout}{done.stderr}"
        return self.to_doc(done.stdout).splitlines()

    def start_node(self, host: str, cwd: Path, args: list[str]) -> None:
        log = (cwd / "node.log").open("ab")
        self.processes[host] = subprocess.Popen(
            [sys.executable, "-m", "cli", "node", "run", *args],
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"},
            preexec_fn=die_with_parent,
        )
        log.close()
        self.waiting = True

    def wait_until_ready(self, timeout_s: float = 45) -> None:
        """Before the first command after the nodes were started: every node answers /readyz with 200."""
        if not getattr(self, "waiting", False) or len(self.processes) < len(HOSTS):
            return
        deadline = time.monotonic() + timeout_s
        for host in HOSTS:
            url = f"http://127.0.0.1:{self.ports[host][1]}/readyz"
            while True:
                assert self.processes[host].poll() is None, (self.root / host / "node.log").read_text()
                try:
                    with urllib.request.urlopen(url, timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                assert time.monotonic() < deadline, f"{host}'s node is not ready"
                time.sleep(0.1)
        self.waiting = False

    def close(self) -> None:
        stop_processes(self.processes.values())


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Hosts]:
    machines = Hosts(tmp_path)
    try:
        yield machines
    finally:
        machines.close()
        for host in HOSTS:
            log = tmp_path / host / "node.log"
            if log.exists() and "Traceback" in log.read_text():
                print(f"----- {host} -----\n{log.read_text()[-3000:]}")


def test_the_ceremony_runs_as_documented(hosts: Hosts, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARBONCHAIN_PASSPHRASE", raising=False)
    steps = ceremony_steps()
    assert {step.host for step in steps} == set(HOSTS)
    for step in steps:
        printed = hosts.run(step, monkeypatch)
        assert normalise(printed) == normalise(step.expected), f"{step.host}$ {step.command}"
    assert len(hosts.processes) == len(HOSTS)  # the nodes ran, and the page's transactions committed
    for host in HOSTS:
        assert_only_own_private_keys(hosts.root / host)
    for host in HOSTS:
        log = (hosts.root / host / "node.log").read_text()
        assert "Traceback" not in log, log[-3000:]


def assert_only_own_private_keys(folder: Path) -> None:
    """Every private key file under a host's folder is one of that member's keys, readable only by it."""
    member = json.loads((folder / folder.name / "member.json").read_text())
    own = {*member["org"]["admin_keys"], *member["client_keys"], *(n["node_key"] for n in member["nodes"])}
    private = []
    for path in folder.rglob("*.json"):
        try:
            document = json.loads(path.read_text())
        except ValueError:
            continue
        if isinstance(document, dict) and ("seed" in document or "encryption" in document):
            private.append(path)
            assert document["public_key"] in own, f"{path} holds a key that is not {folder.name}'s"
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path} is readable by others"
            assert "seed" not in document or not path.name.startswith(("admin", "client")), path
    assert len(private) == 4  # admin, client and node key, and the node home's copy of the node key
    assert stat.S_IMODE((folder / folder.name / "keys").stat().st_mode) == 0o700
