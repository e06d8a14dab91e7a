"""`carbonchain bench`: throughput, latency and scale of a real local network (docs/PERFORMANCE.md).

network.py starts and measures node processes, load.py generates load and listens for commits,
workloads.py signs each workload's transactions, runner.py runs and summarises, profile.py reads py-spy.
"""
