"""Orchestration: the only place that knows paths and the order of stages."""
