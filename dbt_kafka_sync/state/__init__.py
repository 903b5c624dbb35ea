"""The state: snapshots of what was delivered, and the run history."""
