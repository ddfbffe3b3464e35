"""The data the method and the trainer read: the teacher pool and the contrastive pairs."""
