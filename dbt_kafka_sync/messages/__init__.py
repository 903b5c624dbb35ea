"""Messages: the message batch, and how each row becomes one (columns, JSON column, Liquid)."""
