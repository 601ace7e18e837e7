"""The planner: protocol loading, the LangGraph graph of stages, the run directory, the CLI."""
