"""The Ray engine: each replica is a detached, named Ray actor, anywhere in a Ray cluster.

For serving past one machine (`rtserve server --engine ray --ray-address HOST:PORT`). rtserve keeps
its own gateway, reconciler and autoscaler; Ray only places and runs the replica processes (not Ray
Serve, which would duplicate them: see the design note on scaling out).

- `engine`: `RayEngine`, the engine interface: start, stop, route, observe, read logs, adopt.
- `supervision`: one replica actor's life as the engine follows it (ready, health checks, death, stop).
- `adoption`: taking over the actors of the namespace this deployment started (proven by `seals`).
- `slots`: the slot claims that fence replica starts between instances sharing a database.
- `connection`: the process's one connection to Ray, shared by its engines.
- `actor`: `ReplicaActor`, the replica: the worker's server (scoring, queue, batching) in an async
  actor, serving the framed protocol on a TCP port of its node; requests go there, not through Ray.
- `artifacts`: a model version's files shipped to the actor's node through Ray's object store.
- `logs`: the actor's own log, and the engine's copy of it on the backend's disk.
- `pool`: the warm pool of idle actors replicas start from; `placement`: the nodes a replica may use.

Ray is an optional extra (`rtserve[ray]`); nothing here imports it at module level.
"""

from rtserve.server.engines.ray.engine import RayEngine

__all__ = ["RayEngine"]
