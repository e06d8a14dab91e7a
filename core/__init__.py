"""The shared vocabulary of carbonchain: canonical codec, hashing, keys, transactions, blocks and genesis.

This package imports nothing else of ours; every other package imports it, so imports flow one way.
"""
