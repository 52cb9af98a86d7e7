"""The CDK for Terraform library the constructs build on: HashiCorp's `cdktf`, or its community fork
`cdktn` (CDK Terrain, which carries the same API on after HashiCorp deprecated cdktf in December 2025).

Whichever is installed is used, `cdktf` first; install one with `pip install "rtserve[cdktf]"` or
`pip install "rtserve[cdktn]"`. A user's app imports its own `cdktf` or `cdktn` for `App`; the
constructs accept either's scopes, since both are the same jsii classes under different names.
"""

from __future__ import annotations

try:
    import cdktf
except ImportError:  # pragma: no cover - exercised by the cdktn test in its own venv
    try:
        import cdktn as cdktf  # type: ignore[no-redef]
    except ImportError:
        raise ImportError(
            "rtserve's constructs need CDK for Terraform: pip install 'rtserve[cdktf]' (or 'rtserve[cdktn]')."
        ) from None

__all__ = ["cdktf"]
