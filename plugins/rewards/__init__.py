"""The built-in `rewards` plugin: reward functions for the GRPO stage, written as operations."""
