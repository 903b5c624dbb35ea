"""Alerts about a run: what to tell (decide), how to say it (text), and one module per channel."""
