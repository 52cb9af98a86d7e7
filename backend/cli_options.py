"""Options several `rtserve` command groups share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# No typer `envvar=`: RTSERVE_DATA_DIR and RTSERVE_DATABASE_URL are read by `Settings`, like every RTSERVE_*
# variable (docs/configuration.md); an option given wins over them.
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", metavar="DIR", help="Where rtserve keeps its state (default .rtserve, or RTSERVE_DATA_DIR)."
    ),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        metavar="URL",
        help="SQLAlchemy URL of rtserve's state (default: SQLite in the data dir, or RTSERVE_DATABASE_URL).",
    ),
]
