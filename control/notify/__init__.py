"""Link delivery: messages recorded in a durable outbox, delivered by SMS and email.

The API calls ``queue_links`` (then ``OutboxWorker.wake``) and reads ``delivery_status``;
each control node runs one ``OutboxWorker``. Guarantees are described in worker.py.
"""

from control.notify.errors import DeliveryError, LinkError, MissingContact
from control.notify.outbox import delivery_status, queue_links
from control.notify.worker import UNKNOWN_AFTER_RESTART, OutboxWorker

__all__ = [
    "UNKNOWN_AFTER_RESTART",
    "DeliveryError",
    "LinkError",
    "MissingContact",
    "OutboxWorker",
    "delivery_status",
    "queue_links",
]
