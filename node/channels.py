"""The peer layer's channels a node uses, and what each carries (docs/protocol/node.md).

- "consensus": one consensus message (consensus.messages), between validators only.
- "tx":        a batch of raw signed transactions (node.gossip), gossiped to validators.
- "sync":      a block-range request or its answer (node.sync); every validator serves ranges.
- "blocks":    one certified block (core.block.CertifiedBlock), pushed by validators to observers as it
               commits.
"""

CHANNEL_CONSENSUS = "consensus"
CHANNEL_TX = "tx"
CHANNEL_SYNC = "sync"
CHANNEL_BLOCKS = "blocks"
