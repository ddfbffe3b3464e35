"""GRPO on the knobs (SPEC §5-6): rollouts, loss, the trainer, checkpoints, monitor baselines."""
