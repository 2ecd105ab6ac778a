"""Trace-driven cluster simulator (placeholder, filled in below)."""
