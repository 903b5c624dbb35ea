"""The message batch: one Arrow record batch of messages, the one shape every stage shares.

The message query selects these columns, templates fill `value` (or `row_error`), the
producer sends the batch and failure tracing reads it again.
"""

from __future__ import annotations

SEQ = "seq"  # the change's sequence number: how a message is traced back to its row
EVENT = "event"  # added, changed or removed
KEY = "key"  # the message key as text, or NULL
VALUE = "value"  # the message value as JSON text, or NULL (a tombstone)
ROW_KEY = "row_key"  # the primary key as text, to name the row in errors
ROW_ERROR = "row_error"  # why the row cannot be sent, or NULL
TOPIC = "topic"
PARTITION = "partition"  # a whole number, or NULL to let the key (or round-robin) decide
MESSAGE_COLUMNS = (SEQ, EVENT, KEY, VALUE, ROW_KEY, ROW_ERROR, TOPIC, PARTITION)

# Only in a template sync's batches: the values the template reads.
TEMPLATE_ROW = "template_row"
TEMPLATE_PREVIOUS = "template_previous"


def header_column(index: int) -> str:
    """Name of the batch column holding the value of the index-th configured header."""
    return f"header_{index}"
