"""What an operator can see of a real node (OS processes on 127.0.0.1): checkpoints and the consensus log in
/v1/status and /metrics, the metric names docs/API.md lists, every rejection counted by reason, and why
/readyz says no, down to a TLS mismatch named in both nodes' logs (issue 18 problems 3, 4 and 5)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from client import ApiError, CarbonClient
from core.devkeys import dev_admin_key
from node.config import load_config, write_config
from tests.integration.cluster import REPO, Cluster, running_cluster, wait_until
from tests.tlskit import write_self_signed_cert

pytestmark = pytest.mark.timeout(120)


def documented_metrics() -> dict[str, str]:
    """The metrics table of docs/API.md: exported name -> type."""
    text = (REPO / "docs" / "API.md").read_text(encoding="utf-8")
    return dict(
        re.findall(r"^\| `(carbonchain_[a-z_]+)`(?:\{[a-z_]+\})? \| (gauge|counter|histogram) \|", text, re.M)
    )


def exported_metrics(text: str) -> dict[str, str]:
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


def sample(text: str, name: str, **labels: str) -> float:
    label_text = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name + (f"{{{label_text}}}" if labels else "")) + r" (\S+)$"
    match = re.search("^" + pattern, text, re.M)
    return float(match.group(1)) if match else 0.0


async def get_text(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


async def test_checkpoints_metrics_and_their_documentation(tmp_path: Path) -> None:
    with running_cluster(tmp_path, validators=1, observers=1) as cluster:
        validator, observer = cluster.api_url("validator-0"), cluster.api_url("observer-0")
        async with CarbonClient(validator) as client:
            await wait_until(client.is_ready, timeout_s=30, what="the validator to be ready")
            signer = await client.signer(org="bank", key=dev_admin_key("bank"))
            for i in range(10):  # one block each: checkpoint_interval is 10 in the test genesis
                tx = signer.build("deposit_cash", {"org": "ent-a", "amount_fen": 1, "bank_ref": f"CP-{i}"})
                assert (await client.submit_and_wait(tx)).is_ok
            # not JSON: refused, and counted as malformed
            async with (
                aiohttp.ClientSession() as session,
                session.post(validator + "/v1/txs", data=b"{x") as response,
            ):
                assert response.status == 400 and (await response.json())["error"] == "malformed"

            async def stable() -> dict[str, Any] | None:
                status = await client.status()
                return status if status["checkpoint"]["stable_height"] >= 10 else None

            status = await wait_until(stable, timeout_s=20, what="checkpoint 10 to become stable")
        async with CarbonClient(observer) as follower:
            # the observer's link is the validator's only handshake: on a loaded machine it may come late
            await wait_until(follower.is_ready, timeout_s=30, what="the observer to be linked and ready")
        checkpoint = status["checkpoint"]
        assert checkpoint["interval"] == 10 and checkpoint["pruned_records"] > 0
        assert checkpoint["stable_state_root"] is not None and checkpoint["log_records"] >= 0
        async with aiohttp.ClientSession() as session:
            _, metrics = await get_text(session, validator + "/metrics")
            _, observer_metrics = await get_text(session, observer + "/metrics")
            async with session.get(observer + "/v1/status") as response:
                assert (await response.json())["checkpoint"] is None
        assert sample(metrics, "carbonchain_checkpoint_height") >= 10
        assert (
            sample(metrics, "carbonchain_consensus_log_pruned_records_total") == checkpoint["pruned_records"]
        )
        assert sample(metrics, "carbonchain_height") >= 10 and sample(metrics, "carbonchain_ready") == 1
        assert sample(metrics, "carbonchain_rejected_txs_total", reason="malformed") == 1
        assert sample(metrics, "carbonchain_peer_layer_total", counter="handshakes_ok") >= 1
        # docs/API.md lists exactly what a validator and an observer export, by name and type
        documented = documented_metrics()
        assert exported_metrics(metrics) == documented
        assert exported_metrics(observer_metrics) == documented
        log = (cluster.homes["validator-0"] / "node.log").read_text()
        assert "checkpoint at height 10 is stable: deleted" in log


def _require_tls(home: Path) -> None:
    cert, key = write_self_signed_cert(home / "tls")
    config = load_config(home)
    peer = config.peer.model_copy(update={"tls_cert": str(cert), "tls_key": str(key), "tls_ca": str(cert)})
    write_config(home, config.model_copy(update={"peer": peer}))


def _limit_pool(home: Path) -> None:
    config = load_config(home)
    mempool = config.mempool.model_copy(update={"txs_max": 1})
    write_config(home, config.model_copy(update={"mempool": mempool}))


async def test_a_tls_mismatch_is_named_by_readyz_and_both_logs(tmp_path: Path) -> None:
    """The validator requires TLS on its peer port, the observer dials without it."""
    cluster = Cluster(tmp_path, validators=1, observers=1, consensus={"batch_wait_ms": 1000})
    _require_tls(cluster.homes["validator-0"])
    _limit_pool(cluster.homes["validator-0"])
    try:
        cluster.start()
        observer = cluster.api_url("observer-0")
        async with aiohttp.ClientSession() as session:

            async def named() -> dict[str, Any] | None:
                cluster.check_alive()
                try:
                    async with session.get(observer + "/readyz") as response:
                        body: dict[str, Any] = await response.json()
                        return (
                            body
                            if response.status == 503 and "requires TLS" in (body["reason"] or "")
                            else None
                        )
                except aiohttp.ClientError:
                    return None

            ready = await wait_until(named, timeout_s=30, what="the observer's /readyz to name TLS")
            assert ready["ready"] is False
            assert ready["reason"].startswith("linked to 0 validators, 1 needed (validator-0: ")
            async with session.get(observer + "/v1/status") as response:
                assert "requires TLS" in (await response.json())["unlinked_peers"]["validator-0"]
            _, metrics = await get_text(session, observer + "/metrics")
            assert sample(metrics, "carbonchain_peer_handshake_failures_total", reason="tls") >= 1
            # The pool takes one transaction (batch_wait_ms holds it for a second): the next is refused
            # with mempool_full, and counted under that reason.
            async with CarbonClient(cluster.api_url("validator-0")) as client:
                await wait_until(client.is_ready, timeout_s=30, what="the validator to be ready")
                signer = await client.signer(org="bank", key=dev_admin_key("bank"))
                txs = [
                    signer.build("deposit_cash", {"org": "ent-a", "amount_fen": 1, "bank_ref": f"F-{i}"})
                    for i in range(2)
                ]
                await client.submit(txs[0])
                with pytest.raises(ApiError) as refused:
                    await client.submit(txs[1])
                assert refused.value.status == 503 and refused.value.code == "mempool_full"
            _, metrics = await get_text(session, cluster.api_url("validator-0") + "/metrics")
            assert sample(metrics, "carbonchain_rejected_txs_total", reason="mempool_full") == 1
        validator_log = (cluster.homes["validator-0"] / "node.log").read_text()
        assert "plaintext connection on our TLS peer port: that node dials without TLS" in validator_log
        observer_log = (cluster.homes["observer-0"] / "node.log").read_text()
        assert "cannot link to validator-0: " in observer_log and "requires TLS" in observer_log
        cluster.close()
        cluster.assert_no_tracebacks()
    except BaseException:
        for name in cluster.names:
            print(f"----- {name} log tail -----\n{cluster.log_tail(name)}")
        raise
    finally:
        cluster.close()
