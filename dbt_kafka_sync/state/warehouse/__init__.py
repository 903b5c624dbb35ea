"""The warehouse backend: the state in a bookkeeping schema, the diff in the warehouse's SQL."""
