"""Televisit SFU: forwards RTP between participants on aiortc without decoding."""
