"""HTTP surfaces of the backend, one router per API."""
