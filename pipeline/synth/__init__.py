"""Seeded, vectorised synthetic registry and provincial exports with ground truth."""
