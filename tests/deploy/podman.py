"""Build and run the project's Docker image with Debian's podman (no Docker engine, no image
registry here; see shared notes "Building and running the Docker image here").

- The base image is Debian bookworm from ``debootstrap --variant=minbase``, imported once as
  ``localhost/debian:bookworm-min`` and kept in podman's image store: later runs on the same
  machine reuse it, as they reuse the build's cached dependency layer.
- podman's default runtime (crun) fails on these machines: every call uses runc and a
  containers.conf without default ulimits.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "localhost/debian:bookworm-min"
IMAGE = "localhost/televisit:test"
RUNC = "/usr/sbin/runc"
MIRROR = "http://deb.debian.org/debian"
# pip inside the build trusts what pip trusts here (a TLS-intercepting proxy's CA included).
HOST_CA_BUNDLE = Path(os.environ.get("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt"))
DEBOOTSTRAP_SECONDS = 900
BUILD_SECONDS = 1500


class Unavailable(RuntimeError):
    """podman cannot run here; the message says why."""


def _containers_conf() -> Path:
    path = Path(tempfile.gettempdir()) / "televisit-containers.conf"
    if not path.exists():
        path.write_text("[containers]\ndefault_ulimits = []\n")
    return path


def environ() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(_containers_conf())}


def podman(*args: str) -> list[str]:
    return ["podman", "--runtime", RUNC, *args]


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=environ(), capture_output=True, text=True, timeout=timeout, check=False
    )


def check_available() -> None:
    """Raise Unavailable unless podman, runc and debootstrap exist and podman runs as root."""
    for tool in ("podman", "debootstrap"):
        if shutil.which(tool) is None:
            raise Unavailable(f"{tool} is not installed (make system-deps installs it)")
    if not os.access(RUNC, os.X_OK):
        raise Unavailable(f"{RUNC} is missing (apt-get install runc)")
    if os.geteuid() != 0:
        raise Unavailable("podman needs root here (rootless podman has no user namespaces set up)")
    info = _run(podman("info", "--format", "{{.Host.OCIRuntime.Name}}"), 120)
    if info.returncode != 0:
        raise Unavailable(f"podman info failed: {info.stderr.strip()[-500:]}")


def ensure_base_image() -> None:
    """Import a minimal Debian bookworm made by debootstrap, unless podman already has it."""
    if _run(podman("image", "exists", BASE_IMAGE), 60).returncode == 0:
        return
    with tempfile.TemporaryDirectory(prefix="televisit-rootfs-") as rootfs:
        made = _run(
            ["debootstrap", "--variant=minbase", "bookworm", rootfs, MIRROR], DEBOOTSTRAP_SECONDS
        )
        if made.returncode != 0:
            raise RuntimeError(f"debootstrap failed:\n{made.stdout[-2000:]}{made.stderr[-2000:]}")
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            podman("import", "-", BASE_IMAGE),
            stdin=tar.stdout,
            env=environ(),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        tar.wait(timeout=600)
        if imported.returncode != 0:
            raise RuntimeError(f"podman import failed: {imported.stderr[-2000:]}")


def build_image() -> str:
    """Build the repository's Dockerfile on the debootstrap base; returns the image name."""
    previous = _run(podman("image", "inspect", "--format", "{{.Id}}", IMAGE), 60).stdout.strip()
    ca = []
    if HOST_CA_BUNDLE.is_file():
        ca = ["-v", f"{HOST_CA_BUNDLE}:/run/ca.crt:ro", "--build-arg", "CA_BUNDLE=/run/ca.crt"]
    built = _run(
        podman(
            "build", "--format", "docker", "--network", "host", "--build-arg", f"BASE={BASE_IMAGE}",
            *ca, "-t", IMAGE, str(ROOT),
        ),
        BUILD_SECONDS,
    )  # fmt: skip
    if built.returncode != 0:
        raise RuntimeError(f"podman build failed:\n{built.stdout[-3000:]}{built.stderr[-3000:]}")
    # The image the previous build tagged is now untagged: drop it, not the layer cache.
    if previous and previous != inspect(IMAGE, "{{.Id}}"):
        _run(podman("rmi", previous), 300)
    return IMAGE


def inspect(image: str, template: str) -> str:
    out = _run(podman("image", "inspect", "--format", template, image), 60)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return out.stdout.strip()
