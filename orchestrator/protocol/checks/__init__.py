"""What pydantic cannot see in a protocol: references between sections, the templates, probes.

Each module is one kind of check over a validated `Protocol`; `loader` runs them in order and the
first broken rule raises a `ProtocolError` at its file, line and field.
"""
