"""Shared by every tier. Being here puts tests/ on sys.path, so `import kafka_local` works."""
