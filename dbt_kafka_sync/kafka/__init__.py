"""Kafka: client security settings, the producer and its send loop, delivery tracking."""
