"""Run one replica in the foreground, for debugging: `python -m rtserve.server.worker --model-uri URI --socket PATH`.

Logs go to stderr; SIGTERM or Ctrl-C stops it gracefully. Exit code 1 if the model fails to load.
The input column limit defaults to RTSERVE_MAX_INPUT_COLUMNS (read here, this process's entry point).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import traceback

from rtserve.server.worker.limits import max_input_columns
from rtserve.server.worker.server import ReplicaServer, load_model, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rtserve.server.worker", description=__doc__)
    parser.add_argument("--model-uri", required=True, help="a local directory holding an MLflow model")
    parser.add_argument("--socket", required=True, help="the Unix domain socket to listen on")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--max-batch-size", type=int, default=1, help="requests predicted together (1: no batching)")
    parser.add_argument("--max-batch-wait-ms", type=float, default=0.0, help="how long a batch waits for company")
    parser.add_argument(
        "--max-input-columns",
        type=int,
        default=None,
        help="most input columns a request may have, unless the signature names more (default: "
        "RTSERVE_MAX_INPUT_COLUMNS, or 1024)",
    )
    args = parser.parse_args(argv)
    columns = args.max_input_columns if args.max_input_columns is not None else max_input_columns()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("rtserve.replica")
    try:
        model = load_model(args.model_uri)
    except Exception:
        traceback.print_exc()
        return 1

    def on_ready(server: ReplicaServer) -> None:
        log.info("Serving %s on %s", args.model_uri, args.socket)

    batching = {"max_batch_size": args.max_batch_size, "max_batch_wait_ms": args.max_batch_wait_ms}
    asyncio.run(serve(model, args.socket, on_ready=on_ready, max_input_columns=columns, **batching))
    return 0


if __name__ == "__main__":
    sys.exit(main())
