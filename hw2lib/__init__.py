"""Code shared by the three problems: noise schedule, DDIM stepper, image I/O, checkpoints, CLI plumbing."""
