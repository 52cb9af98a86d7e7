"""The local engine: each replica is a worker process on this machine.

Replicas fork from a fork server that imported MLflow, pandas and scikit-learn once, so a replica
of a small model is ready in a fraction of a second. Each replica serves the framed protocol of
`backend.worker.protocol` on a Unix domain socket under `run_dir`; the engine keeps one persistent
connection per replica and routes each request to the READY replica of its version with the fewest
requests in flight.

- `engine`: `LocalEngine`, the engine interface: start, stop, route, observe, read logs.
- `supervision`: one monitor task per replica, from fork to reaping (readiness, health pings,
  crash detection through a pidfd, graceful stop).
- `forkserver`: the pre-loaded fork server, watched and replaced when it dies.
- `client`: `WorkerClient`, the engine's side of the framed protocol (the Ray engine's too, over TCP).
- `logs`: each replica's output pumped into its rotated log, and read back.

Nothing outlives the backend: the fork server is killed by the kernel when the backend's process
dies, and a replica exits when its status pipe reaches end of file. Imports point one way: this
package uses `backend.worker`, never the reverse.
"""

from rtserve.server.engines.local.engine import LocalEngine

__all__ = ["LocalEngine"]
