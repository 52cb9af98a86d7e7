"""Entry point Terraform starts (through the launcher `rtserve provider install` writes).

`python -m rtserve.provider`."""

from __future__ import annotations

import os
import sys
import threading
import time


def exit_with_parent(interval: float = 1.0) -> threading.Thread:
    """Exit when Terraform does: `tf`'s server only stops on a StopProvider call, so a Terraform that is
    killed (Ctrl-C twice, a CI timeout) would otherwise leave this process serving forever."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(0)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> None:
    import tf.provider
    from tf.runner import run_provider

    from rtserve.provider.plugin import RtserveProvider
    from rtserve.provider.servicer import RtserveServicer

    exit_with_parent()
    # run_provider imports ProviderServicer from tf.provider when called: give it ours (see servicer.py).
    tf.provider.ProviderServicer = RtserveServicer
    run_provider(RtserveProvider(), argv or sys.argv)


if __name__ == "__main__":
    main()
