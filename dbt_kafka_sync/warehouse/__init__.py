"""Readers that expose a dbt model's materialized relation to DuckDB."""
