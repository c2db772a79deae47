"""The image operators deploy, built from the repository's Dockerfile with podman and run:
`televisit serve` starts in it as a non-root user with the compiled media path, its health
check passes, and a consult through it decodes video both ways.

Skipped (with the reason) only where podman cannot run at all; `make system-deps` installs
podman, runc and debootstrap. The first run on a machine spends a minute on debootstrap and a
few on the build; later runs reuse podman's cached base image and dependency layer.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import free_port
from tests.sfu.harness import both_decode
from tests.sfu.sfu_client import SfuClient
from tests.web.server import LiveServer

from . import podman

pytestmark = pytest.mark.timeout(2400)
DATA_DIR = "/data"


class ContainerServer(LiveServer):
    """LiveServer with `televisit serve` inside the image (host network, loopback only)."""

    image: str = podman.IMAGE

    @property
    def name(self) -> str:
        return f"televisit-test-{self.port}"

    def command(self) -> list[str]:
        settings = {
            k: v
            for k, v in self.env().items()
            if k.startswith("TELEVISIT__") and k != "TELEVISIT__SERVER__DATA_DIR"
        }
        env = [arg for k, v in settings.items() for arg in ("-e", f"{k}={v}")]
        # No systemd here for podman's health check timer: the test runs the check itself.
        return podman.podman(
            "run", "--rm", "--network", "host", "--name", self.name, "--health-interval", "disable",
            "-e", f"TELEVISIT__SERVER__DATA_DIR={DATA_DIR}", *env, self.image,
        )  # fmt: skip

    def env(self) -> dict[str, str]:
        return {**super().env(), **podman.environ()}

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            podman.podman("exec", self.name, *command),
            env=podman.environ(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def stop(self) -> None:
        super().stop()
        subprocess.run(
            podman.podman("rm", "-f", "--ignore", self.name),
            env=podman.environ(),
            capture_output=True,
            timeout=120,
            check=False,
        )


@pytest.fixture(scope="module")
def image() -> str:
    try:
        podman.check_available()
    except podman.Unavailable as exc:
        pytest.skip(f"podman cannot run here: {exc}")
    podman.ensure_base_image()
    return podman.build_image()


@pytest.fixture(scope="module")
def container(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContainerServer]:
    server = ContainerServer(tmp_path_factory.mktemp("image"), free_port())
    server.start()
    try:
        server.make_department("en")
        yield server
    finally:
        server.stop()


def test_the_image_is_small_and_runs_as_a_user_with_a_health_check(image, container) -> None:
    assert podman.inspect(image, "{{.Config.User}}") == "televisit"
    assert "healthz" in podman.inspect(image, "{{json .Config.Healthcheck}}")
    who = container.exec("sh", "-c", "id -u; command -v gcc || echo no-compiler")
    assert who.stdout.split() == ["10001", "no-compiler"], who
    health = subprocess.run(
        podman.podman("healthcheck", "run", container.name),
        env=podman.environ(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert health.returncode == 0, health


def test_a_consult_through_the_image_decodes_both_ways(container) -> None:
    appt = container.make_appointment(client_language="en")
    tele = appt["telemedicine"]
    status, guest = container.call("POST", "/api/v1/join", {"pin": tele["pin"]})
    assert status == 200, guest
    status, host = container.call(
        "POST", "/api/v1/join", {"token": tele["host_url"].rsplit("/", 1)[1]}
    )
    assert status == 200, host

    async def consult() -> None:
        clients = [SfuClient(a["signaling_url"], a["token"]) for a in (guest, host)]
        try:
            for client in clients:
                await client.connect()
                await client.join()
                await client.publish()
            await both_decode(*clients, seconds=90)
        finally:
            for client in clients:
                await client.close()

    asyncio.run(consult())
