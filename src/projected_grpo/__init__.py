"""projected-grpo: can gradient projection stop a model from learning to reward-hack under GRPO?"""

__version__ = "0.1.0"
