"""Workers: what consumes topics (pub/sub delivery, bindings, workflows)."""
