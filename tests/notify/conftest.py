import pytest

from config import load_settings

from .helpers import SmsGateway, SmtpServer, free_port, open_test_store


@pytest.fixture
def smtp_server():
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def sms_gateway():
    gateway = SmsGateway()
    await gateway.start()
    yield gateway
    await gateway.stop()


def notify_overrides(smtp_port: int, sms_url: str, gateway_dedupes: bool = False, **notify) -> dict:
    """Tiny timings so retries happen within a test; generous send timeout for a busy machine."""
    values = {
        "poll_seconds": 0.05,
        "max_attempts": 4,
        "backoff_base_seconds": 0.05,
        "backoff_max_seconds": 0.2,
        "send_timeout_seconds": 10.0,
        "smtp": {"host": "127.0.0.1", "port": smtp_port},
        "sms": {
            "gateway_url": sms_url,
            "api_key": "test-key",
            "sender": "Kärpänen",
            "gateway_dedupes": gateway_dedupes,
        },
    }
    values.update(notify)
    return values


@pytest.fixture(params=["sqlite", "redis"])
def backend(request):
    return request.param


@pytest.fixture
def store_overrides(backend, request):
    if backend == "sqlite":
        return {"backend": "sqlite"}
    return {"backend": "redis", "redis_url": request.getfixturevalue("redis_url")}


@pytest.fixture
def make_settings(tmp_path, smtp_server, sms_gateway, store_overrides):
    def make(**notify):
        sms_url = notify.pop("sms_url", sms_gateway.url)
        return load_settings(
            environ={},
            overrides={
                "server": {"data_dir": str(tmp_path)},
                "store": store_overrides,
                "notify": notify_overrides(smtp_server.port, sms_url, **notify),
            },
        )

    return make


@pytest.fixture
def settings(make_settings):
    return make_settings()


@pytest.fixture
def dead_url():
    return f"http://127.0.0.1:{free_port()}/sms"


@pytest.fixture
async def store(settings):
    s = await open_test_store(settings)
    yield s
    await s.close()
