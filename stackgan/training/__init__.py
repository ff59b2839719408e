"""Training a stage: the command line, the loop, the step, the input, the checkpoints."""
