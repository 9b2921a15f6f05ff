"""Step 4 of T-REX: its config and the learned reward plugged into the step-1 PPO trainer as its reward source."""
