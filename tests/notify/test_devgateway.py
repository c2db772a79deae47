import aiohttp

from config.settings import SmsSettings
from control.notify.devgateway import DevSmsGateway
from control.notify.sms import SmsSender

from .helpers import free_port


async def test_dev_gateway_checks_requests_and_dedupes_on_the_key():
    gateway = DevSmsGateway(free_port(), api_key="k")
    await gateway.start()
    auth = {"Authorization": "Bearer k"}
    sms = {"to": "+358401234567", "from": "Clinic", "text": "hello"}
    try:
        async with aiohttp.ClientSession() as http:

            async def post(headers, **kw):
                async with http.post(gateway.url, headers=headers, **kw) as resp:
                    return resp.status, await resp.json()

            assert (await post({"Idempotency-Key": "a"}, json=sms))[0] == 401
            assert (await post(auth, json=sms))[0] == 400  # no Idempotency-Key
            assert (await post({**auth, "Idempotency-Key": "a"}, data=b"{"))[0] == 400
            assert (await post({**auth, "Idempotency-Key": "a"}, json={"to": 1}))[0] == 400
            first = await post({**auth, "Idempotency-Key": "a"}, json=sms)
            again = await post({**auth, "Idempotency-Key": "a"}, json=sms)
            other = await post({**auth, "Idempotency-Key": "b"}, json=sms)
    finally:
        await gateway.stop()
    assert first == (200, {"id": "sms-1"})
    assert again == (200, {"id": "sms-1", "duplicate": True})
    assert other == (200, {"id": "sms-2"})
    assert list(gateway.delivered) == ["a", "b"] and gateway.keys_seen() == ["a", "a", "b"]


async def _never() -> None:
    raise AssertionError("no handoff for a gateway that dedupes on the key")


async def test_without_an_api_key_no_authorization_header_is_sent():
    gateway = DevSmsGateway(free_port())  # accepts anyone
    await gateway.start()
    handoffs = []

    async def handoff() -> None:
        handoffs.append(len(gateway.requests))

    message = {"to": "+358401234567", "body": "hi", "idempotency_key": "k1"}
    plain = SmsSender(SmsSettings(gateway_url=gateway.url, api_key="", sender="C"), 10.0)
    dedupes = SmsSender(
        SmsSettings(gateway_url=gateway.url, api_key="", sender="C", gateway_dedupes=True), 10.0
    )
    try:
        # Any gateway: the handoff is recorded before the request is sent.
        assert await plain.send(message, handoff=handoff) == "sms-1"
        assert handoffs == [0]
        # A gateway that drops repeats: no handoff needed.
        assert await dedupes.send(dict(message, idempotency_key="k2"), handoff=_never) == "sms-2"
    finally:
        await plain.close()
        await dedupes.close()
        await gateway.stop()
    assert [r["auth"] for r in gateway.requests] == [None, None]
