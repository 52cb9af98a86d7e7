"""The status builders of both APIs: one family, built from the published snapshot (never from wishes).

`model_endpoint` gives the preview API's shapes (an endpoint status per registered model, a status per
served version); `serving_endpoint` the GA API's (a serving endpoint with its config, pending config and
served entities). Both read a served version's state from its `VersionView` through `version_state`.
"""

from __future__ import annotations

from rtserve.server.control.reconciler import VersionState, VersionView


def version_state(view: VersionView | None) -> str:
    """A served version's state; a version the controller has not planned yet is PENDING."""
    return VersionState.PENDING if view is None else view.state
