"""The web UI (ReactPy), served by the daemon."""
