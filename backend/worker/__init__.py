"""The scoring worker: one replica process serving one MLflow model over a Unix domain socket.

- `scoring`: parse a request and predict with MLflow's semantics (framework-free).
- `protocol`: the framed RPC between the gateway and a replica, and its asyncio client.
- `server`: the replica's side of the protocol.
- `replica`: the process entry point the local engine starts (`run_replica`).
- `preload`: the heavy imports a fork server does once, so replicas start warm.
"""
