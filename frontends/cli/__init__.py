"""`tunectl`: the command-line client of the tunelog daemon (HTTP over its Unix socket).

Kept import-light on purpose: `tunectl status` must not load click, msgspec, rich or httpx.
"""
