"""Library code shared by the built-in plugins (runs in worker processes only)."""
