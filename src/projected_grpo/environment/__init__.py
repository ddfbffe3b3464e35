"""The coding environment (SPEC §1): problems, loophole modes, prompts, the sandbox, the graders."""
