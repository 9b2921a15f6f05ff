"""Adapters to other libraries: Gymnasium and Stable-Baselines3 envs, imitation's trajectory format."""
