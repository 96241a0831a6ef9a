"""One module per binding type, each with ``build(component) -> Binding``."""
