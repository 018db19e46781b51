"""What audio a far end's SDP offers or answers: enough to tell a codec mismatch from bad SDP.

pjsua negotiates the media itself; this only reads the SDP it received, after a call's media
failed, to say why. RFC 4566 §5 (one `<type>=<value>` per line, `v=0` first), §5.14 (`m=`),
§6 (`a=rtpmap`); payload types 0..95 without an rtpmap are RFC 3551 §6 static assignments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# RFC 3551 §6 Table 4: static audio payload types (those a G.711 probe can meet).
STATIC_AUDIO_PT: dict[int, str] = {
    0: "PCMU",
    3: "GSM",
    4: "G723",
    5: "DVI4",
    6: "DVI4",
    7: "LPC",
    8: "PCMA",
    9: "G722",
    10: "L16",
    11: "L16",
    12: "QCELP",
    13: "CN",
    14: "MPA",
    15: "G728",
    16: "DVI4",
    17: "DVI4",
    18: "G729",
}
# RFC 4566 §5: a line is one lower-case letter, "=", then the value.
_LINE = re.compile(r"[a-z]=.*")
# §5.14: m=<media> <port>[/<number of ports>] <proto> <fmt> ...
_MEDIA = re.compile(r"m=(\S+) (\d+)(?:/\d+)? (\S+)((?: \S+)*)")
# §6: a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>]
_RTPMAP = re.compile(r"a=rtpmap:(\d+) ([^/\s]+)/\d+")


class SdpError(ValueError):
    """The body is not SDP as RFC 4566 §5 writes it."""


@dataclass(slots=True, frozen=True)
class AudioOffer:
    port: int  # 0: the audio stream was rejected (RFC 3264 §6)
    codecs: tuple[str, ...]  # encoding names, upper case, in the SDP's order


def audio_streams(sdp: str) -> list[AudioOffer]:
    """Every m=audio section's port and codec names; SdpError if the body is not SDP."""
    lines = [line for line in sdp.replace("\r\n", "\n").split("\n") if line]
    if not lines or lines[0] != "v=0":
        raise SdpError("SDP must start with v=0 (RFC 4566 §5.1)")
    streams: list[tuple[int, list[int], dict[int, str]]] = []
    for line in lines:
        if not _LINE.fullmatch(line):
            raise SdpError(f"not an SDP line: {line[:40]!r}")
        if line.startswith("m="):
            m = _MEDIA.fullmatch(line)
            if m is None:
                raise SdpError(f"malformed media line: {line[:60]!r}")
            if m.group(1) == "audio":
                fmts = m.group(4).split()
                if not all(f.isdigit() for f in fmts) and m.group(3).startswith("RTP/"):
                    raise SdpError(f"RTP payload types must be numbers: {line[:60]!r}")
                streams.append((int(m.group(2)), [int(f) for f in fmts if f.isdigit()], {}))
            else:
                streams.append((-1, [], {}))  # another medium: its attributes are not ours
        elif line.startswith("a=rtpmap:") and streams:
            r = _RTPMAP.match(line)
            if r is None:
                raise SdpError(f"malformed rtpmap: {line[:60]!r}")
            streams[-1][2][int(r.group(1))] = r.group(2).upper()
    out = []
    for port, pts, names in streams:
        if port < 0:
            continue
        codecs = [names.get(pt) or STATIC_AUDIO_PT.get(pt, f"PT{pt}") for pt in pts]
        out.append(AudioOffer(port=port, codecs=tuple(codecs)))
    return out
