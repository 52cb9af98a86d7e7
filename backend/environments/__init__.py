"""Per-model environments: which Python environment a model version runs in, and building it with uv.

- `decision`: does the server's own environment satisfy a model's logged requirements?
- `builder`: build (or reuse) an environment with uv under `<data-dir>/envs/<key>`, one build per key.
- `catalog`: the environments on disk (`rtserve envs list|prune`).
- `worker_path`: how an environment's interpreter finds rtserve's worker code without installing rtserve.
"""
