"""The mobile API's refusals: the virtual clinic's errors (control/clinic/errors.py, answered as
problem+json naming the field) with problem types of their own where the app branches on them."""

from __future__ import annotations

from control.clinic.errors import Conflict, Forbidden, Invalid, Unauthenticated


class DeviceRevoked(Unauthenticated):
    """The device was signed out (by its user or an administrator) or its account disabled:
    the app forgets its token and asks for a new login key."""

    kind = "device-revoked"


class MobileDisabled(Forbidden):
    """The organization has the mobile app turned off: no keys, no syncing."""

    kind = "mobile-disabled"


class NotPermitted(Forbidden):
    """The account lacks the permission group ``mobile``."""

    kind = "mobile-not-permitted"


class NoteConflict(Conflict):
    """The note changed on another device since this one read it (``current`` is the note as
    it is now); nothing was overwritten."""

    kind = "note-conflict"


class KeyReused(Conflict):
    """An idempotency key came again with a different body."""

    kind = "idempotency-key-reused"


class UnknownReference(Invalid):
    """A patient, client, appointment or barcode the input names does not exist."""

    kind = "unknown-reference"
