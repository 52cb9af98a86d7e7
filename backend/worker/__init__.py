"""The scoring worker: one replica process serving one MLflow model over a Unix domain socket.

- `scoring`: parse a request and predict with MLflow's semantics (framework-free).
- `rowwise`: the row-wise fast path and adaptive batching for models that work on DataFrames.
- `protocol`: the framed RPC between the gateway and a replica, and its asyncio client.
- `server`: the replica's side of the protocol.
- `replica`: the process entry point the local engine starts (`run_replica`).
- `logs`: replica logs, timestamped line by line, bounded and rotated.
- `preload`: the heavy imports a fork server does once, so replicas start warm.
"""
