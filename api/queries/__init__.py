"""SQL of the HTTP API, one module per resource; every statement is parameterised."""
