"""Deterministic sample data for demos and tests."""
