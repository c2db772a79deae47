"""The private aiortc/aioice names the media path hooks into. If an upgrade moves one, this
fails first and says which (pin: aiortc==1.16.*)."""

from __future__ import annotations

import inspect

import aioice.ice
import aiortc
from aiortc import rtcpeerconnection, rtcrtpreceiver
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcicetransport import RTCIceGatherer, RTCIceTransport
from aiortc.rtcrtpsender import RTCRtpSender

from media_server import transport


def params(func) -> list[str]:
    return list(inspect.signature(func).parameters)


def test_aiortc_version_is_the_one_the_hooks_were_written_for() -> None:
    assert aiortc.__version__.startswith("1.16."), aiortc.__version__


def test_dtls_transport_hooks() -> None:
    # SfuDtlsTransport overrides these; _recv_next calls them after decrypting.
    assert params(RTCDtlsTransport._handle_rtp_data) == ["self", "data", "arrival_time_ms"]
    assert params(RTCDtlsTransport._handle_rtcp_data) == ["self", "data"]
    assert params(RTCDtlsTransport._setup_srtp) == ["self"]
    source = inspect.getsource(RTCDtlsTransport._recv_next)
    for name in (
        "self._rx_srtp.unprotect(",
        "self._rx_srtp.unprotect_rtcp(",
        "self._handle_rtp_data(",
        "self._handle_rtcp_data(",
        "self.transport._recv()",
    ):
        assert name in source, name
    assert "self._rx_srtp = " in inspect.getsource(RTCDtlsTransport._setup_srtp)
    assert params(RTCDtlsTransport._send_rtp) == ["self", "data"]


def test_ice_transport_receive_hook() -> None:
    # transport.adopt() wraps the per-instance _recv attribute.
    assert "self._recv = self._connection.recv" in inspect.getsource(RTCIceTransport.__init__)
    assert RTCIceGatherer  # gathering runs through aioice.ice.Connection below


def test_sender_hooks() -> None:
    # ForwardingSender replaces these loops, and forwarding_sender() replaces the events
    # stop() waits for by one event set for good: aiortc must only set and await them.
    init = inspect.getsource(RTCRtpSender.__init__)
    source = inspect.getsource(RTCRtpSender)
    for name in ("__rtp_started", "__rtp_exited", "__rtcp_started", "__rtcp_exited"):
        assert f"self.{name} = asyncio.Event()" in init, name
        uses = source.count(f"self.{name}")
        assert uses == 1 + source.count(f"self.{name}.set()") + source.count(f"self.{name}.wait()")
    assert params(RTCRtpSender._run_rtp) == ["self", "codec"]
    assert params(RTCRtpSender._run_rtcp) == ["self"]
    assert "self._ssrc = random32()" in init
    assert "self._stream_id" in init


def test_receiver_hooks() -> None:
    # ForwardingReceiver's receive() starts nothing; stop() and disconnect must then be no-ops.
    source = inspect.getsource(rtcrtpreceiver.RTCRtpReceiver)
    assert params(rtcrtpreceiver.RTCRtpReceiver.receive) == ["self", "parameters"]
    assert "threading.Thread(" in inspect.getsource(rtcrtpreceiver.RTCRtpReceiver.receive)
    assert "if self.__started:" in inspect.getsource(rtcrtpreceiver.RTCRtpReceiver.stop)
    assert "if self.__decoder_thread:" in source
    assert "await transceiver.receiver.receive(" in inspect.getsource(rtcpeerconnection)
    # forwarding_receiver() drops these: each must be aiortc's, and used only where packets
    # are received or decoded (receive() is ForwardingReceiver's, the others never run).
    init = inspect.getsource(rtcrtpreceiver.RTCRtpReceiver.__init__)
    for name in transport._UNUSED:
        assert f"self.__{name}" in init, name
    handled = inspect.getsource(rtcrtpreceiver.RTCRtpReceiver._handle_rtp_packet)
    handled += inspect.getsource(rtcrtpreceiver.RTCRtpReceiver._RTCRtpReceiver__stop_decoder)
    handled += inspect.getsource(rtcrtpreceiver.RTCRtpReceiver.receive)
    # stop() reads the RTCP task's events only when started (asserted above); the task is
    # started by receive() alone.
    handled += inspect.getsource(rtcrtpreceiver.RTCRtpReceiver.stop)
    handled += inspect.getsource(rtcrtpreceiver.RTCRtpReceiver._run_rtcp)
    assert "self._run_rtcp()" in inspect.getsource(rtcrtpreceiver.RTCRtpReceiver.receive)
    assert source.count("self._run_rtcp()") == 1
    for name in transport._UNUSED:
        assert source.count(f"self.__{name}") == init.count(f"self.__{name}") + handled.count(
            f"self.__{name}"
        ), name


def test_peer_connection_internals_we_read() -> None:
    # Transceiver attributes read after negotiation, and the answer-side codec pinning.
    source = inspect.getsource(rtcpeerconnection.RTCPeerConnection.setRemoteDescription)
    assert "t.kind == media.kind and t.mid in [None, media.rtp.muxId]" in source
    assert "filter_preferred_codecs(" in source
    assert "transceiver._codecs = common" in source
    assert "transceiver._headerExtensions = " in source
    assert callable(rtcpeerconnection.find_common_codecs)
    assert hasattr(rtcrtpreceiver, "StreamStatistics")


def test_aioice_gathering_hook() -> None:
    assert (
        params(aioice.ice.Connection.get_component_candidates)
        == [
            "self",
            "component",
            "addresses",
            "timeout",
        ]
        or aioice.ice.Connection.get_component_candidates.__module__ == "media_server.ports"
    )
    from media_server import ports

    assert params(ports._ORIGINAL) == ["self", "component", "addresses", "timeout"]
    assert "get_component_candidates(" in inspect.getsource(aioice.ice.Connection.gather_candidates)
    assert params(aioice.ice.server_reflexive_candidate) == ["protocol", "stun_server"]
    assert "local_candidate" in inspect.getsource(aioice.ice.StunProtocol)
    assert "self._protocols" in inspect.getsource(ports._ORIGINAL)


def test_fast_path_hooks() -> None:
    # SfuDtlsTransport._install_fast_path / leg_of: the nominated pair's UDP protocol and
    # address, the SRTP sessions and the state aiortc sets when DTLS is up.

    assert "self._nominated: dict[int, CandidatePair] = {}" in inspect.getsource(
        aioice.ice.Connection.__init__
    )
    pair = inspect.getsource(aioice.ice.CandidatePair)
    assert "self.protocol = protocol" in pair and "def remote_addr" in pair
    assert "self.receiver.data_received(data, self.local_candidate.component)" in inspect.getsource(
        aioice.ice.StunProtocol.datagram_received
    )
    assert "self.transport = " in inspect.getsource(aioice.ice.StunProtocol.connection_made)
    start = inspect.getsource(RTCDtlsTransport.start)
    assert start.index("self._setup_srtp()") < start.index("self._set_state(State.CONNECTED)")
    setup = inspect.getsource(RTCDtlsTransport._setup_srtp)
    assert "self._rx_srtp = " in setup and "self._tx_srtp = " in setup
    assert "self._state = State.NEW" in inspect.getsource(RTCDtlsTransport.__init__)
    assert "self._state = state" in inspect.getsource(RTCDtlsTransport._set_state)


def test_stun_guard_hook() -> None:
    # ports.GuardedStunProtocol parses first and lets aioice's datagram_received do the rest: it
    # relies on aioice taking a ValueError from parse_message as "not STUN" and on nothing
    # else being caught there (what escapes would reach the event loop).
    source = inspect.getsource(aioice.ice.StunProtocol.datagram_received)
    assert "message = stun.parse_message(data)" in source
    assert "except ValueError:" in source and source.count("except") == 1
    assert "self.receiver" in source
    from media_server import ports

    assert "GuardedStunProtocol(connection)" in inspect.getsource(ports._host_candidates)
    assert "self._connection = " in inspect.getsource(RTCIceTransport.__init__)


def test_sctp_bound_hooks() -> None:
    # sctptransport.BoundedSctpTransport: the answer reads the instance's capabilities, DATA
    # chunks go through _receive_data_chunk, and the receive window and reassembly live here.
    from aiortc import rtcsctptransport

    assert "sctp.getCapabilities()" in inspect.getsource(rtcpeerconnection)
    cls = rtcsctptransport.RTCSctpTransport
    assert params(cls._receive_data_chunk) == ["self", "chunk"]
    init = inspect.getsource(cls.__init__)
    for name in ("_advertised_rwnd", "_last_received_tsn", "_sack_misordered", "_inbound_streams"):
        assert f"self.{name}" in init, name
    receive = inspect.getsource(cls._receive_data_chunk)
    assert "self._mark_received(chunk.tsn)" in receive and "add_chunk(chunk)" in receive
    assert "self.reassembly" in inspect.getsource(rtcsctptransport.InboundStream.__init__)
    assert "_advertised_rwnd" in inspect.getsource(cls._send_sack)


class _KeyingOnly:
    """Stands in for the DTLS connection: _setup_srtp only reads the profile and keys."""

    def __init__(self, profile: bytes) -> None:
        self.profile = profile

    def get_selected_srtp_profile(self) -> bytes:
        return self.profile

    def export_keying_material(self, label: bytes, length: int) -> bytes:
        return bytes(range(length))


def test_outbound_srtp_replay_window_is_the_one_the_send_history_trusts() -> None:
    # subscription.SRTP_REPLAY_WINDOW must equal aiortc's tx window: a packet one further back
    # than it fails srtp_protect (replay_old), which the send history must never promise.
    import struct

    import pylibsrtp
    from aiortc import rtcdtlstransport

    from media_server.subscription import SRTP_REPLAY_WINDOW

    transport = RTCDtlsTransport.__new__(RTCDtlsTransport)
    transport._srtp_profiles = rtcdtlstransport.SRTP_PROFILES
    transport._ssl = _KeyingOnly(rtcdtlstransport.SRTP_PROFILES[0].openssl_profile)
    transport._role = "client"
    transport._setup_srtp()

    def protect(seq: int) -> None:
        transport._tx_srtp.protect(struct.pack("!BBHII", 0x80, 96, seq, 0, 42) + bytes(100))

    protect(5000)
    protect(5000 - SRTP_REPLAY_WINDOW + 1)  # the oldest the history answers
    protect(5000)  # a resend of the same packet (allow_repeat_tx)
    try:
        protect(5000 - SRTP_REPLAY_WINDOW)
    except pylibsrtp.Error as exc:
        assert "replay" in str(exc).lower() or "10" in str(exc), exc
    else:
        raise AssertionError("libsrtp protected a packet outside the window the history trusts")
