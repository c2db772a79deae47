"""The compiled per-packet path (media_server/rtpforward.c); everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "media_server.rtpforward",
            sources=["media_server/rtpforward.c"],
            extra_compile_args=["-O2", "-Wall", "-Wno-unused-parameter"],
        )
    ]
)
