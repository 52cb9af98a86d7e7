"""The scoring worker: what runs in a replica process, serving one MLflow model over a Unix domain socket.

- `types`: what a replica and its engine exchange (`ReplicaSpec`, `InvocationResult`).
- `protocol`: the frames and ops of the RPC between the gateway and a replica (both sides use it).
- `server`: the replica's side of the protocol: the request queue, the scoring thread.
- `scoring`: parse a request and predict with MLflow's semantics (framework-free).
- `rowwise`: the row-wise paths for models that work on DataFrames, over `parsing` (requests as
  DataFrames), `exact` (signature-exact float frames), `joint` (one predict call, one answer per
  request), `single` (one request) and `batched` (adaptive batching).
- `limits`: requests wider than the replica accepts, refused before parsing.
- `errors`: error answers in the Databricks envelope.
- `replica`: the process entry point the local engine starts (`run_replica`); `__main__` runs one
  in the foreground.
- `logs`: the replica's output, into the engine's log pipe or captured in-process.
- `preload`: the heavy imports a fork server does once, so replicas start warm.

Nothing here imports an engine (`backend.engines`): engines use the worker, never the reverse.
"""
