"""The state stores: one module per backend, each a :class:`..store.StateStore`.

Open them through :func:`tether.platform.state.registry.open_state_store` from a Dapr
``state.*`` component; docs/state-stores.md describes each one.
"""
