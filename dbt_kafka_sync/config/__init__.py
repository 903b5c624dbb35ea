"""Validated configuration: the kafka_sync block of a model and the Kafka profile output."""
