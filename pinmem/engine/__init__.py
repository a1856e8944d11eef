"""Training machinery: configuration, trainer, checkpoints, distributed helpers, logging."""
