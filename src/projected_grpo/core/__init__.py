"""Used by every stage: atomic file writes, run manifests, the learning-rate schedule."""
