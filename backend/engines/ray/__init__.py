"""The Ray engine: each replica is a detached, named Ray actor, anywhere in a Ray cluster.

For serving past one machine (`rtserve server --engine ray --ray-address HOST:PORT`). rtserve keeps
its own gateway, reconciler and autoscaler; Ray only places and runs the replica processes (not Ray
Serve, which would duplicate them: see the design note on scaling out).

- `engine`: `RayEngine`, the engine interface: start, stop, route, observe, read logs, adopt.
- `actor`: `ReplicaActor`, the replica: the worker's server (scoring, queue, batching) in an async
  actor, serving the framed protocol on a TCP port of its node; requests go there, not through Ray.
- `artifacts`: a model version's files shipped to the actor's node through Ray's object store.
- `logs`: the actor's own log, and the engine's copy of it on the backend's disk.

Ray is an optional extra (`rtserve[ray]`); nothing here imports it at module level.
"""

from rtserve.server.engines.ray.engine import RayEngine

__all__ = ["RayEngine"]
