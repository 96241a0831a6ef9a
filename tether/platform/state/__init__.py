"""State management: the store contract, the stores, and the state service the front ends
call (the sidecar's HTTP API is :mod:`tether.sidecar.state`)."""
