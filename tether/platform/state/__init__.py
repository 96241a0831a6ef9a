"""State management: the store contract, the stores, and the sidecar's state API."""
