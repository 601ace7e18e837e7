"""One module per stage node of the planner graph."""
