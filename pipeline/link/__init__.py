"""Link export persons to registry persons: index, candidates, scores, decisions."""
