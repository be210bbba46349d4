"""SQL of each resource, in one layer: shared by sync and async callers, parameterised."""
