"""Jinja templates of the worker's prompts (a package so that setuptools ships the .j2 files)."""
