"""PBFT consensus as a sans-I/O state machine (no asyncio, sockets, storage, clock or randomness inside).

Modules: `replica` (the thin front that routes inputs), its logic parts `normal_case`, `view_change`,
`catch_up` and `checkpoints`, its state parts `view_state`, `votes`, `chain`, `safety`, `progress`,
`membership`, `pool` and `transfer`, and the plumbing in `outbox` and `config`; `driver` (the one loop that
feeds a replica and performs its outputs, used by the node and by the simulation); `messages` (wire types,
canonical codec, signing digests), `certificate` (quorum proofs and the NEW-VIEW re-proposal rule),
`events` (inputs and outputs), `log` (durable record layout).

Shell contract (consensus.driver.Driver implements steps 2 and 3 over an Effects object; node/validator.py
and tests/consensus/pbft_sim.py provide the two Effects):
  1. Build once:  Replica(ReplicaConfig.from_genesis(genesis, key.public_key), key, RecoveredState(...))
     then perform `replica.start(now_ms)`. RecoveredState carries the last executed height, the roots of
     the last pipeline_depth executed heights, the last tx_validity_blocks_max executed blocks with their
     commit certificates, and every consensus-log record previously persisted (not deleted).
  2. Feed inputs one at a time with `replica.step(input)`; never concurrently. Feed Tick(now_ms) whenever
     the clock moved (at least before each other input is fine); time never enters any other way.
  3. Perform the returned outputs in list order:
       Persist(records): write all records atomically and durably (fsync) BEFORE performing any later
         output of the same list. A record with value None deletes its key. This is double-sign protection.
       Send(to, message): encode with messages.encode_message and send; to == BROADCAST means all other
         validators. Best effort: losses are tolerated (timers retransmit what matters).
       ExecuteBlock(block, certificate): store the block with its certificate durably, execute it, then
         feed BlockExecuted(height, state_root, results_root). Heights come strictly in order without gaps;
         execute them in that order (execution may lag behind; the replica waits where it must).
       SetTimer(id, delay_ms): (re)arm timer `id`, replacing any pending one; when due feed a Tick and
         TimerFired(id). CancelTimer(id): disarm it.
       FetchBlocks(from, to, peer): ask that validator for committed blocks [from..to] with certificates;
         feed BlocksFetched(peer, blocks) with what it returned (possibly nothing). Also serve such
         requests from peers out of storage (up to transfer.FETCH_CHUNK blocks).
       ReportMisbehaviour(peer, reason, evidence): log it, count it, optionally drop the connection. It
         means a proven fault (a bad signature on the peer's link, a proposal invalid in itself, two
         conflicting signed messages as `evidence`), never a mere disagreement with our chain or clock.
       TxRefused(tx_id, reason): the transaction of a TxReceived was not taken into the pending pool
         (REFUSED_* codes: full pool, replay, expired, wrong chain); tell whoever submitted it.
       Halt(reason): stop the node loudly with the reason (state divergence); do not restart automatically.
  4. Decode peer bytes with messages.decode_message (raises CodecError: drop the frame, penalise the
     peer), then feed MessageReceived(peer_index, message). Feed client/gossiped transactions that
     admission accepted (signature and shape checked) as TxReceived(txs), a batch in one input;
     gossip them to all validators.
     Feed PeerConnected(peer) whenever a link to a validator (re)opens, and PeerDisconnected(peer) when
     it closes or a FetchBlocks to it could not be sent for want of a link: blocks are then asked of a
     linked validator instead of waiting out the fetch timeout.
"""
