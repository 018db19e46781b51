"""Reading a far end's SDP for codecs (probes/pjsua/sdp.py), RFC 4566 / RFC 3551 examples."""

from __future__ import annotations

import pytest

from probes.pjsua.sdp import AudioOffer, SdpError, audio_streams

# RFC 4566 §5 example, trimmed to its audio part and with rtpmaps added.
PCMU_PCMA = (
    "v=0\r\no=jdoe 2890844526 2890842807 IN IP4 10.47.16.5\r\ns=SDP Seminar\r\n"
    "c=IN IP4 224.2.17.12/127\r\nt=2873397496 2873404696\r\n"
    "m=audio 49170 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
)

GOOD = [
    (PCMU_PCMA, [AudioOffer(49170, ("PCMU", "PCMA", "TELEPHONE-EVENT"))]),
    # Static payload types need no rtpmap (RFC 3551 §6).
    ("v=0\nm=audio 5004 RTP/AVP 9 18\n", [AudioOffer(5004, ("G722", "G729"))]),
    # A dynamic payload type named by rtpmap.
    ("v=0\nm=audio 5004 RTP/AVP 96\na=rtpmap:96 opus/48000/2\n", [AudioOffer(5004, ("OPUS",))]),
    # Port 0: the stream was rejected (RFC 3264 §6).
    ("v=0\nm=audio 0 RTP/AVP 0\n", [AudioOffer(0, ("PCMU",))]),
    # Video is skipped; its rtpmaps do not leak into the audio stream.
    (
        "v=0\nm=video 5006 RTP/AVP 96\na=rtpmap:96 H264/90000\nm=audio 5004 RTP/AVP 8\n",
        [AudioOffer(5004, ("PCMA",))],
    ),
    ("v=0\ns=-\n", []),
    # An unknown static type is named by number.
    ("v=0\nm=audio 5004 RTP/AVP 77\n", [AudioOffer(5004, ("PT77",))]),
]


@pytest.mark.parametrize(("sdp", "expected"), GOOD)
def test_audio_streams(sdp: str, expected: list[AudioOffer]) -> None:
    assert audio_streams(sdp) == expected


BAD = [
    ("", "v=0"),
    ("o=x\nv=0\n", "v=0"),
    ("v=0\nthis is not SDP\n", "not an SDP line"),
    ("v=0\nm=audio port RTP/AVP 0\n", "malformed media line"),
    ("v=0\nm=audio 5004 RTP/AVP zero\n", "payload types must be numbers"),
    ("v=0\nm=audio 5004 RTP/AVP 0\na=rtpmap:x PCMU/8000\n", "malformed rtpmap"),
    ("v=0\nM=audio 5004 RTP/AVP 0\n", "not an SDP line"),
]


@pytest.mark.parametrize(("sdp", "why"), BAD)
def test_malformed_sdp(sdp: str, why: str) -> None:
    with pytest.raises(SdpError, match=why):
        audio_streams(sdp)
