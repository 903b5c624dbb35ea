"""Change detection in the local DuckDB session: primary keys, row hashes and the diff."""
