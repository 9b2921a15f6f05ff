"""Step 3 of T-REX: snippet pairs, the reward net, the T-REX loss, the trainer, one reward model end to end, and its
evaluation on new episodes of the training levels and on held-out levels."""
