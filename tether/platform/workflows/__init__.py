"""Durable workflows: the pure engine (history, actions, replay executor, authoring API).

No broker and no store here: the runtime (tether.platform.workflows runtime modules) feeds
history events in and carries the returned actions out."""
