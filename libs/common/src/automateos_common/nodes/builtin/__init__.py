"""Built-in node types, one per module; every module here is discovered by the registry."""
