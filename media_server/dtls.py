"""DTLS with peers of either certificate type, in either role.

aiortc's DTLS context offers only ECDHE-ECDSA suites and answers an ``actpass`` offer as the
DTLS client. A peer whose certificate is RSA (GStreamer 1.22's webrtcbin, some embedded
stacks) then fails the handshake with "no shared cipher": as the DTLS server it can only pick
an RSA suite, which our ClientHello never lists. Two fixes, both applied:

- ``prefer_server_role``: answer an ``actpass`` offer with ``a=setup:passive`` (we are the
  DTLS server, as most SFUs are): the suite then follows *our* ECDSA certificate, and the
  client authenticates with whatever certificate it has (RFC 8842 5.3 lets the answerer
  choose; RFC 5763 5: the certificate types need not match).
- ``SfuCertificate``: our context lists the ECDHE-RSA suites too, for a peer that insists on
  being the server (its offer says ``a=setup:passive``).
"""

from __future__ import annotations

from typing import Any

from aiortc.rtcdtlstransport import RTCCertificate, SRTPProtectionProfile
from aiortc.sdp import SessionDescription
from OpenSSL import SSL

# aiortc's ECDSA suites first (our certificate), then the same strength for RSA servers.
CIPHERS = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-SHA:"
    b"ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:"
    b"ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA"
)


class SfuCertificate(RTCCertificate):
    """aiortc's certificate (ECDSA P-256) whose DTLS context also offers RSA suites."""

    def _create_ssl_context(self, srtp_profiles: list[SRTPProtectionProfile]) -> SSL.Context:
        ctx = super()._create_ssl_context(srtp_profiles)
        ctx.set_cipher_list(CIPHERS)
        return ctx


def prefer_server_role(offer: SessionDescription, transports: list[Any]) -> None:
    """Before ``createAnswer``: take the DTLS server role when the offer leaves it to us
    (``a=setup:actpass``, aiortc's role "auto"). An offer that says ``active`` already made us
    the server; one that says ``passive`` keeps us the client."""
    if any(m.dtls is not None and m.dtls.role != "auto" for m in offer.media):
        return
    for transport in transports:
        if transport._role == "auto":
            transport._set_role("server")
