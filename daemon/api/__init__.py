"""HTTP routes under /v1. Each module declares its routes in a `routes` list."""
