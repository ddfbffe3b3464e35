"""The model organism (SPEC §2): its synthetic corpus and its pretraining from scratch."""
