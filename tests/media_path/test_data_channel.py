"""What a member can make the server buffer on its data channel is bounded (issue 12): the SFU
advertises a max-message-size, and a peer that ignores it is cut off before the message is
reassembled, with its media untouched."""

from __future__ import annotations

import pytest
from aiortc import rtcsctptransport

from media_server.sctptransport import BoundedSctpTransport

from .peers import keeps_receiving, wait_for


@pytest.fixture
def held_peak(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The most bytes any SCTP inbound stream in the process held in reassembly."""
    peak = [0]
    add = rtcsctptransport.InboundStream.add_chunk

    def spy(self, chunk) -> None:  # noqa: ANN001
        add(self, chunk)
        peak[0] = max(peak[0], sum(len(c.user_data) for c in self.reassembly))

    monkeypatch.setattr(rtcsctptransport.InboundStream, "add_chunk", spy)
    return peak


async def test_a_chat_message_past_the_advertised_size_is_never_reassembled(
    make_call, held_peak: list[int]
) -> None:
    call = await make_call()
    a, b = call.a, call.b
    sctp = a.participant.pc.sctp
    assert isinstance(sctp, BoundedSctpTransport)
    limit = sctp.max_message_bytes
    assert limit == 6 * a.participant.settings.chat_max_bytes + 1024
    assert f"a=max-message-size:{limit}" in a.participant.pc.localDescription.sdp
    await wait_for(lambda: a.client.chat.readyState == "open", 20, "chat open")
    client_sctp = a.client.pc.sctp
    assert client_sctp._remote_max_message_size == limit  # what a conforming peer keeps to
    a.client.chat.send('{"text": "hello"}')
    await wait_for(lambda: a.chats == ['{"text": "hello"}'], 20, "chat at the server")

    # A peer that ignores it: a 300 KB chat message.
    client_sctp._remote_max_message_size = 1 << 20
    held_peak[0] = 0
    a.client.chat.send('{"text": "' + "x" * 300_000 + '"}')
    await wait_for(lambda: a.participant.dropped.get("data_channel_overrun") == 1, 20, "cut off")
    await wait_for(lambda: a.client.chat.readyState == "closed", 20, "the member's chat closed")
    assert a.chats == ['{"text": "hello"}']
    assert held_peak[0] <= limit  # never more than one message's worth held
    assert sctp._inbound_streams == {}
    # The member's media and the other member's chat go on.
    await keeps_receiving(a.client, b.client, video=20)
    await wait_for(lambda: b.client.chat.readyState == "open", 20, "b's chat open")
    b.client.chat.send('{"text": "still here"}')
    await wait_for(lambda: b.chats == ['{"text": "still here"}'], 20, "b's chat")
    assert a.participant.faults.count == 0
