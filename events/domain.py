"""Imports every module that defines event types, so the tagged union is complete."""

from tunelog.events import jobs, merges, plugins, runs, serving, system, uploads  # noqa: F401
