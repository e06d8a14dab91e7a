"""The running node: its role (a validator's consensus shell or an observer's follower), block sync, admission,
the mempool and gossip, block application, the API and events (docs/ARCHITECTURE.md)."""
