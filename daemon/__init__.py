"""The tunelog daemon: API, writer, scheduler, plugin manager. Never imports torch."""
