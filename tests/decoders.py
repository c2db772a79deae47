"""A process-wide watch on decoders: every PyAV codec context opened for decoding in this process
is reported, whoever opens it.

aiortc's decoders (VP8, H.264, Opus, G.711, G.722) and any PyAV user (a transcoder, a
recorder) open one through ``av.CodecContext.create(name, "r")`` (``av.Codec(name,
"r").create()`` goes through it too); it is wrapped on the class itself, so ``from av import
CodecContext`` imports made before or after ``watch`` are covered alike. ``on_decoder`` gets
the codec name and the stack that opened it, so a test can tell a transcoder's decoder (its
module on the stack) from one that should not exist.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

import av

OnDecoder = Callable[[str, list[str]], None]


def watch(on_decoder: OnDecoder) -> None:
    """Call ``on_decoder(codec name, stack)`` for every decoder opened from now on."""
    create = av.CodecContext.create

    def context_create(*args: Any, **kw: Any) -> Any:
        context = create(*args, **kw)
        if context.is_decoder:
            on_decoder(context.name, traceback.format_stack()[:-1])
        return context

    av.CodecContext.create = staticmethod(context_create)
