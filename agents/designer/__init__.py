"""The designer: drafts one stage of a protocol in a forced tool call (agents/designer/agent.py);
the orchestrator gives it the stage's schema and the check its draft must pass."""
