"""The control plane: desired state, the reconciler, events and status."""
