"""Warehouses a model is read from, each behind the same Source interface."""
