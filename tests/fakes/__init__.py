"""Test doubles that speak real wire protocols: the fake Anthropic server, a tiny local model."""
