"""`carbonchain bench --baseline pysyncobj`: the wire format and ledger as unit vectors, a missing extra as a
clear error, and one short end-to-end run whose baseline cluster must commit transfers and report its keys.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main as cli_main
from core.errors import ConfigError
from tools.bench import baseline
from tools.bench.baseline import (
    HELLO_ID,
    NOT_COMMITTED,
    BaselineCluster,
    BaselineError,
    LoadSeen,
    ReplyReader,
    RequestReader,
    TransferLedger,
    compute_baseline_metrics,
    compute_status,
    describe_status,
    encode_reply,
    encode_request,
    require_baseline,
)
from tools.bench.stats import compute_window, compute_window_stats
from tools.bench.workloads import TxFactory, enterprise_id, transfers_load

REPO = Path(__file__).resolve().parents[3]
BASELINE_KEYS = {
    "baseline_tx_per_s",
    "ratio_to_baseline",
    "baseline_p50_ms",
    "baseline_p95_ms",
    "baseline_p99_ms",
}


def _transfers(count: int, enterprises: int = 4) -> list[bytes]:
    factory = TxFactory(baseline.CHAIN_ID, 0, 100)
    return [tx.raw for tx in transfers_load(factory, enterprises, count)]


# --- wire format ------------------------------------------------------------------------------------------


def test_requests_survive_arbitrary_splits() -> None:
    frames = [(7, b"abc"), (HELLO_ID, b""), (8, bytes(300))]
    stream = b"".join(encode_request(i, payload) for i, payload in frames)
    reader = RequestReader()
    seen = []
    for at in range(0, len(stream), 5):
        seen += reader.feed(stream[at : at + 5])
    assert seen == frames


def test_an_oversized_request_is_refused() -> None:
    with pytest.raises(BaselineError):
        RequestReader(payload_bytes_max=10).feed(encode_request(1, bytes(11)))


def test_replies_decode_in_order_across_splits() -> None:
    stream = encode_reply(1, 0) + encode_reply(2, NOT_COMMITTED + 2)
    reader = ReplyReader()
    assert reader.feed(stream[:7]) == [(1, 0)]
    assert reader.feed(stream[7:]) == [(2, NOT_COMMITTED + 2)]


def test_status_codes_name_ledger_results_and_raft_failures() -> None:
    assert describe_status(compute_status("ok", 0)) == "ok"
    assert describe_status(compute_status("insufficient_balance", 0)) == "insufficient_balance"
    assert describe_status(compute_status(None, 2)) == "not_committed:2"  # FAIL_REASON.MISSING_LEADER


# --- the replicated ledger --------------------------------------------------------------------------------


def test_ledger_applies_a_signed_transfer_once() -> None:
    ledger = TransferLedger.for_bench(4)
    raw = _transfers(1)[0]  # bench-ent-00000 -> bench-ent-00001, 1 t
    assert ledger.apply(raw) == "ok"
    assert ledger.balances_t[enterprise_id(0)] == baseline.BALANCE_T - 1
    assert ledger.balances_t[enterprise_id(1)] == baseline.BALANCE_T + 1
    assert ledger.apply(raw) == "replay"
    assert ledger.balances_t[enterprise_id(1)] == baseline.BALANCE_T + 1


def test_ledger_rejects_a_bad_signature_and_an_unknown_sender() -> None:
    raw = _transfers(1)[0]
    tampered = raw[:-1] + bytes([raw[-1] ^ 1])  # the signature is the last field of the envelope
    assert TransferLedger.for_bench(4).apply(tampered) == "bad_signature"
    assert TransferLedger.for_bench(0).apply(raw) == "unknown_sender"
    assert TransferLedger.for_bench(4).apply(b"\x00") == "malformed"


def test_ledger_refuses_an_overdraft() -> None:
    ledger = TransferLedger.for_bench(4)
    ledger.balances_t[enterprise_id(0)] = 0
    assert ledger.apply(_transfers(1)[0]) == "insufficient_balance"


def test_window_stats_count_commits_in_the_window_and_latency_of_sends_in_it() -> None:
    start, end = compute_window(started=100.0, finished=200.0, warmup_s=5.0, duration_s=10.0)
    assert (start, end) == (102.5, 110.0)  # warm-up at most a quarter of the duration
    stats = compute_window_stats([(101.0, 103.0), (103.0, 103.5), (109.0, 111.0)], start, end)
    assert stats.committed == 2 and stats.tx_per_s == pytest.approx(2 / 7.5)
    assert stats.p50_ms == pytest.approx(500.0) and stats.max_ms == pytest.approx(2000.0)


def test_baseline_metrics_name_why_transactions_were_not_committed() -> None:
    seen = LoadSeen(
        started=0.0,
        stopped=4.0,
        send_times=[0.5, 1.5, 2.0, 2.5, 0.0],
        commit_times=[1.0, 2.0, 0.0, 3.0, 0.0],
        statuses=[0, 0, -1, NOT_COMMITTED + 3, -1],  # ok, ok, no reply, discarded, never sent
    )
    metrics = compute_baseline_metrics(seen, 1.0, 4.0, [2.0], [1.0], [50.0], [])
    assert (metrics["txs"], metrics["committed"], metrics["not_committed"]) == (4, 2, 2)
    assert metrics["not_committed_reasons"] == {"no_reply": 1, "not_committed:3": 1}
    assert metrics["codes"] == {"ok": 2}
    assert metrics["tx_per_s"] == pytest.approx(2 / 3)  # commits at 1.0 and 2.0 in the window 1.0..4.0
    assert metrics["nodes"]["pysyncobj-0"]["cpu_s"] == 1.0


# --- a missing extra --------------------------------------------------------------------------------------


def test_a_missing_pysyncobj_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(baseline.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[baseline\]'"):
        require_baseline("pysyncobj")
    result = CliRunner().invoke(cli_main, ["bench", "--baseline", "pysyncobj", "--runs", "1"])
    assert result.exit_code == 1
    assert "pip install -e '.[baseline]'" in result.output
    assert "Traceback" not in result.output


# --- processes --------------------------------------------------------------------------------------------


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_the_cluster_stops_its_nodes_when_the_run_fails(tmp_path: Path) -> None:
    pytest.importorskip("pysyncobj")
    with (
        pytest.raises(RuntimeError, match="boom"),
        BaselineCluster(nodes=3, enterprises=4, workdir=tmp_path) as c,
    ):
        c.start()
        pids = [p.pid for p in c.processes]
        raise RuntimeError("boom")
    assert not any(_is_running(pid) for pid in pids)


@pytest.mark.timeout(60)
def test_bench_with_the_baseline_commits_and_reports_it(tmp_path: Path) -> None:
    pytest.importorskip("pysyncobj")
    command = [sys.executable, "-m", "cli", "bench", "--json", "--validators", "3", "--observers", "0"]
    command += ["--duration", "3", "--warmup", "1", "--runs", "1", "--enterprises", "4", "--txs", "4000"]
    command += ["--concurrency", "100", "--baseline", "pysyncobj", "--workdir", str(tmp_path)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=50)
    finally:
        if process.poll() is None:  # SIGTERM = Ctrl-C for the bench: it stops every node it started
            process.send_signal(signal.SIGTERM)
            try:
                process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
    assert process.returncode == 0, stderr[-2000:]
    report = json.loads(stdout)
    assert report.keys() >= BASELINE_KEYS
    runs = report["baseline_detail"]["runs"]
    assert len(runs) == 1 and runs[0]["committed"] > 0
    assert runs[0]["codes"] == {"ok": runs[0]["committed"]}  # every transfer verified and applied
    assert runs[0]["dead_nodes"] == []
    assert report["baseline_tx_per_s"] > 0
    assert report["ratio_to_baseline"] == pytest.approx(report["tx_per_s"] / report["baseline_tx_per_s"])
    assert list(tmp_path.iterdir()) == []  # both networks' folders are removed after a clean run
