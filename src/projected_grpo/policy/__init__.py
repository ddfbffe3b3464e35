"""A policy: loading a model, the SVD knobs, sampling, log-probs, evaluation in the environment."""
