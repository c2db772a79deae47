"""DTLS with a peer whose certificate is RSA (GStreamer 1.22's webrtcbin does this), with the
SFU as the DTLS server (the peer offered actpass) and as the DTLS client (the peer insisted
on being the server): both handshakes complete and media flows."""

from __future__ import annotations

import pytest
from aiortc.rtcdtlstransport import (
    SRTP_PROFILES,
    RTCCertificate,
    SRTPProtectionProfile,
    generate_certificate,
)
from cryptography.hazmat.primitives.asymmetric import rsa
from OpenSSL import SSL

from media_server import dtls

from .peers import Client, ServerSide, media_settings, wait_for


class RsaCertificate(RTCCertificate):
    """An RSA certificate and OpenSSL's usual suites of both kinds, like GStreamer's."""

    @classmethod
    def generateCertificate(cls) -> RsaCertificate:  # noqa: N802 - aiortc's name
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(key=key, cert=generate_certificate(key))  # type: ignore[arg-type]

    def _create_ssl_context(self, srtp_profiles: list[SRTPProtectionProfile]) -> SSL.Context:
        ctx = super()._create_ssl_context(srtp_profiles)
        ctx.set_cipher_list(b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256")
        return ctx


@pytest.mark.parametrize(("setup", "sfu_role"), [("actpass", "server"), ("passive", "client")])
async def test_an_rsa_certificate_peer_connects_in_either_role(setup: str, sfu_role: str) -> None:
    client = Client("rsa")
    certificate = RsaCertificate.generateCertificate()
    transports = [t.receiver.transport for t in client.pc.getTransceivers()]
    for transport in [*transports, client.pc.sctp.transport]:
        transport._RTCDtlsTransport__local_certificate = certificate
    server = ServerSide("sfu", media_settings(), client)
    try:
        offer = (await client.offer()).replace("a=setup:actpass", f"a=setup:{setup}")
        answer = await server.participant.handle_offer(offer)
        assert ("a=setup:passive" if sfu_role == "server" else "a=setup:active") in answer
        await client.accept_answer(answer)
        await wait_for(lambda: "connected" in server.states, 20, "the DTLS handshake")
        assert server.participant._transport._role == sfu_role
        video = next(p for p in server.participant.publications if p.kind == "video")
        await wait_for(lambda: video.packets_in > 20, 20, "video from the RSA peer")
    finally:
        await server.participant.close()
        await client.close()


def test_our_context_offers_rsa_suites_too() -> None:
    ctx = dtls.SfuCertificate.generateCertificate()._create_ssl_context(SRTP_PROFILES)
    names = SSL.Connection(ctx).get_cipher_list()
    assert "ECDHE-ECDSA-AES128-GCM-SHA256" in names and "ECDHE-RSA-AES128-GCM-SHA256" in names


def test_one_certificate_and_context_per_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    # Per participant they were ~23 kB and a key generation (issue 17); a shared context must
    # cache no sessions (each would keep a peer's certificate) and be renewed with the
    # certificate, well before aiortc's 30 days.
    certificate = dtls.worker_certificate()
    assert dtls.worker_certificate() is certificate
    ctx = certificate._create_ssl_context(SRTP_PROFILES)
    assert certificate._create_ssl_context(SRTP_PROFILES) is ctx
    assert ctx.get_session_cache_mode() == SSL.SESS_CACHE_OFF
    assert certificate._create_ssl_context(SRTP_PROFILES[:1]) is not ctx
    later = dtls.time.monotonic() + dtls.RENEW_SECONDS + 1
    monkeypatch.setattr(dtls.time, "monotonic", lambda: later)
    assert dtls.worker_certificate() is not certificate
