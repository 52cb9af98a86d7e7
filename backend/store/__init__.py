"""rtserve's own state (desired endpoints, compute configs, events, tokens) in SQLAlchemy 2."""
