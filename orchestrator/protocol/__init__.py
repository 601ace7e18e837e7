"""Experiment protocols: the schema, the loader and deterministic stimulus generation."""

from orchestrator.protocol.loader import LoadedProtocol, load_protocol
from orchestrator.protocol.schema import Protocol

__all__ = ["LoadedProtocol", "Protocol", "load_protocol"]
