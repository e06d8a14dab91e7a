"""Conformance vectors: a certified chain with its full state after every height, for other implementations.

`python -m conformance.vectors --write` regenerates docs/protocol/vectors/; `--check` verifies that the
files there are what the chaincode computes today (tests/conformance/test_vectors.py runs it).
"""
