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

One certificate per worker process (``worker_certificate()``, as Janus has one per process),
and one OpenSSL context per certificate and SRTP profile list: per participant they were
~23 kB (key and certificate ~3 kB, context ~20 kB) and a key generation per join. Peers
check only the fingerprint in our SDP (RFC 8122 5), which each peer connection's answer
carries as before; a shared context caches no sessions (each would hold the peer's
certificate until 20,480 were cached) and releases a connection's record buffers while it
is idle (OpenSSL's SSL_MODE_RELEASE_BUFFERS: ~25 kB per connection after the handshake).
"""

from __future__ import annotations

import time
from typing import Any

from aiortc.rtcdtlstransport import RTCCertificate, SRTPProtectionProfile
from aiortc.sdp import SessionDescription
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL

# aiortc's ECDSA suites first (our certificate), then the same strength for RSA servers.
CIPHERS = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-SHA:"
    b"ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:"
    b"ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA"
)


# A worker's certificate is renewed this often (aiortc's are valid 30 days; a renewed one is
# used by peer connections made after it, the others keep theirs).
RENEW_SECONDS = 24 * 3600


class SfuCertificate(RTCCertificate):
    """aiortc's certificate (ECDSA P-256) whose DTLS context also offers RSA suites, made once
    per list of SRTP profiles and shared by every DTLS connection using this certificate."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        super().__init__(key, cert)
        self._contexts: dict[tuple[bytes, ...], SSL.Context] = {}

    def _create_ssl_context(self, srtp_profiles: list[SRTPProtectionProfile]) -> SSL.Context:
        key = tuple(p.openssl_profile for p in srtp_profiles)
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = super()._create_ssl_context(srtp_profiles)
            ctx.set_cipher_list(CIPHERS)
            ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
            ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
            self._contexts[key] = ctx
        return ctx


_worker: list[tuple[float, SfuCertificate]] = []  # (made at, monotonic s; the certificate)


def worker_certificate() -> SfuCertificate:
    """This process's certificate for new peer connections: one per worker, renewed after
    ``RENEW_SECONDS``."""
    now = time.monotonic()
    if not _worker or now - _worker[0][0] > RENEW_SECONDS:
        _worker[:] = [(now, SfuCertificate.generateCertificate())]
    return _worker[0][1]


def prefer_server_role(offer: SessionDescription, transports: list[Any]) -> None:
    """Before ``createAnswer``: take the DTLS server role when the offer leaves it to us
    (``a=setup:actpass``, aiortc's role "auto"). An offer that says ``active`` already made us
    the server; one that says ``passive`` keeps us the client."""
    if any(m.dtls is not None and m.dtls.role != "auto" for m in offer.media):
        return
    for transport in transports:
        if transport._role == "auto":
            transport._set_role("server")
