"""Composition root: configuration, database, CLI, web server, scheduler."""
