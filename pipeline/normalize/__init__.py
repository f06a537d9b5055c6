"""Normalisers: one module per kind of value, each over whole columns."""
