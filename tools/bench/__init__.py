"""`carbonchain bench`: throughput, latency and scale of a real local network (docs/PERFORMANCE.md).

network.py starts and measures node processes, load.py generates load and listens for commits,
workloads.py signs each workload's transactions, run.py is one run on a fresh network (catchup.py the
catch-up run built on it), runner.py repeats runs and summarises them, stats.py holds the window
and percentile rules, profile.py reads py-spy; baseline.py (with baseline_node.py, one PySyncObj node
process) runs the same transfers through a Raft cluster for `--baseline pysyncobj`.
"""
