"""What can go wrong when queueing links and when handing a message to a provider."""

from __future__ import annotations


class LinkError(ValueError):
    """Links cannot be queued for this appointment; ``field`` names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class MissingContact(LinkError):
    """The client has no phone (SMS) or no email address (email)."""


class DeliveryError(Exception):
    """A send attempt failed.

    ``permanent``: retrying cannot help (SMTP 5xx, HTTP 4xx other than 408/429).
    ``unknown``: the provider may have accepted the message (the connection broke after the
    whole message was handed over); sending again could deliver it twice.
    Neither: a transient failure that is retried with backoff.
    """

    def __init__(self, reason: str, *, permanent: bool = False, unknown: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.unknown = unknown


# HTTP answers that say "later", not "never".
RETRYABLE_4XX = (408, 425, 429)


def http_refusal(reason: str, status: int) -> DeliveryError:
    """A provider's non-2xx answer: permanent for a 4xx other than 408/425/429 (the request
    itself is wrong; repeating it cannot help), otherwise retried."""
    return DeliveryError(reason, permanent=400 <= status < 500 and status not in RETRYABLE_4XX)
