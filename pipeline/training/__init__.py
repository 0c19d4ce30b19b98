"""Mid-stage restorer training: losses and the resumable training loop."""
