"""Running the commands: a run, a plan, and those that read or move the state."""
