"""Link delivery: messages recorded in a durable outbox, delivered by SMS and email.

The API calls ``queue_links`` (then ``OutboxWorker.wake``), reads ``delivery_status`` and
calls ``cancel_links`` when an appointment is cancelled; the staff mobile app's submissions
go out with ``queue_webhook``;
each control node runs one ``OutboxWorker``. Guarantees are described in worker.py.
"""

from control.notify.errors import DeliveryError, LinkError, MissingContact
from control.notify.outbox import cancel_links, delivery_status, queue_links, queue_webhook
from control.notify.worker import UNKNOWN_AFTER_RESTART, OutboxWorker

__all__ = [
    "UNKNOWN_AFTER_RESTART",
    "DeliveryError",
    "LinkError",
    "MissingContact",
    "OutboxWorker",
    "cancel_links",
    "delivery_status",
    "queue_links",
    "queue_webhook",
]
