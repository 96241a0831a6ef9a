"""Runtime core: CloudEvent type, components, sidecar API, SDK and CLI."""
