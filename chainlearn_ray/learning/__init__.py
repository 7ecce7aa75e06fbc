"""Local learning: model architectures, training and prediction loops, random generators."""
