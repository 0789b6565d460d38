"""Learning: fold preparation, training, strategies' shared tools, fine-tuning, search."""
