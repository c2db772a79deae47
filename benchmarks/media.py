"""Media encoded once per load-client process and replayed: VP8 frames cut into RTP payloads,
and Opus packets.

Encoding 640x480 VP8 costs ~2.5 ms a frame; a load client that encoded live would cost more
than the SFU it measures. So a short loop is encoded at start (a keyframe first, so replaying
the loop keeps a decoder happy) and only RTP headers and the VP8 picture id change on replay.
"""

from __future__ import annotations

import fractions
import math
from dataclasses import dataclass

import av
import numpy as np
from aiortc.codecs.vpx import Vp8Encoder

VIDEO_CLOCK = 90000
AUDIO_CLOCK = 48000
AUDIO_PACKETS_PER_SECOND = 50


@dataclass(frozen=True)
class EncodedLoop:
    """``frames[i]`` is the list of RTP payloads of frame i; ``period`` seconds between them."""

    kind: str
    frames: tuple[tuple[bytes, ...], ...]
    period: float
    clock: int

    @property
    def ticks(self) -> int:
        return round(self.period * self.clock)

    @property
    def packets_per_second(self) -> float:
        """RTP packets per second the loop sends when replayed in real time."""
        return sum(len(frame) for frame in self.frames) / (len(self.frames) * self.period)

    @property
    def bitrate(self) -> float:
        """Payload bits per second of the loop."""
        size = sum(len(p) for frame in self.frames for p in frame)
        return size * 8 / (len(self.frames) * self.period)


def _pattern(width: int, height: int, index: int, rng: np.random.Generator) -> np.ndarray:
    """A moving gradient, a sweeping square and a noisy band, so the encoder spends its bitrate."""
    x = np.arange(width, dtype=np.uint16)
    y = np.arange(height, dtype=np.uint16)[:, None]
    img = np.stack([(x + y + 4 * index) % 256, (2 * x + 0 * y) % 256, (3 * y + 0 * x) % 256], -1)
    img = img.astype(np.uint8)
    band = height // 4
    img[band : 2 * band] = rng.integers(0, 256, (band, width, 3), dtype=np.uint8)
    side = height // 6
    left = (index * 8) % (width - side)
    img[height // 2 : height // 2 + side, left : left + side] = 255
    return img


def encode_video(
    width: int = 640, height: int = 480, fps: float = 30.0, bitrate: int = 1_500_000,
    seconds: float = 2.0,
) -> EncodedLoop:  # fmt: skip
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.bit_rate = bitrate
    codec.time_base = fractions.Fraction(1, round(fps))
    codec.gop_size = 100000  # one keyframe, at the start of the loop
    codec.options = {
        "deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0",
        "minrate": str(bitrate), "maxrate": str(bitrate), "bufsize": str(bitrate),
        "undershoot-pct": "95", "overshoot-pct": "15", "static-thresh": "0",
    }  # fmt: skip
    rng = np.random.default_rng(7)
    frames: list[tuple[bytes, ...]] = []
    count = max(1, round(seconds * fps))
    for index in range(count + 10):  # a little slack: the rate control settles
        frame = av.VideoFrame.from_ndarray(_pattern(width, height, index, rng), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = index
        data = b"".join(bytes(p) for p in codec.encode(frame))
        if data:
            frames.append(tuple(Vp8Encoder._packetize(data, 0)))
    frames = frames[:count]
    return EncodedLoop("video", tuple(frames), 1.0 / fps, VIDEO_CLOCK)


def encode_audio(seconds: float = 1.0, hz: float = 440.0) -> EncodedLoop:
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate, codec.layout, codec.format = AUDIO_CLOCK, "stereo", "s16"
    codec.bit_rate = 64000
    samples = AUDIO_CLOCK // AUDIO_PACKETS_PER_SECOND
    packets: list[tuple[bytes, ...]] = []
    count = round(seconds * AUDIO_PACKETS_PER_SECOND)
    for index in range(count + 5):
        t = (np.arange(samples) + index * samples) / AUDIO_CLOCK
        tone = (np.sin(2 * math.pi * hz * t) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(
            np.repeat(tone, 2).reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate, frame.pts = AUDIO_CLOCK, index * samples
        frame.time_base = fractions.Fraction(1, AUDIO_CLOCK)
        packets += [(bytes(p),) for p in codec.encode(frame)]
    return EncodedLoop("audio", tuple(packets[:count]), 1.0 / AUDIO_PACKETS_PER_SECOND, AUDIO_CLOCK)
