"""Agents: the one LLM client (anthropic SDK) and the evaluators that judge responses."""
