"""Every bound the SIP parser enforces, each with its reason (untrusted peers send these bytes)."""

from __future__ import annotations

# The largest UDP payload a socket read can return (16-bit UDP length field); bigger cannot be
# one datagram, so it is the read size and the ceiling for everything below.
MAX_DATAGRAM = 65_535

# One SIP message over any transport. RFC 3261 §18.1.1 moves requests near the MTU to TCP, but
# nothing a monitor exchanges comes close to a datagram's size; a bigger stream message is a
# misbehaving or hostile peer, so the stream buffer is bounded by the same number.
MAX_MESSAGE_BYTES = MAX_DATAGRAM

# The header block (start line + header fields) of a stream message: bounds how much the
# framer buffers while looking for the empty line.
MAX_HEADER_BYTES = 32_768

# The body: whatever is left of a message once headers are counted.
MAX_BODY_BYTES = MAX_MESSAGE_BYTES

# Header fields per message. RFC 4475 §3.1.1.7 (long values) has 43; real replies ~15.
MAX_HEADERS = 256

# One physical header line. RFC 4475's longest is 593 characters (§3.1.1.7).
MAX_HEADER_LINE = 8_192

# The start line. RFC 4475's longest (§3.1.1.2, wide method characters) is 159 characters.
MAX_START_LINE = 8_192

# CSeq sequence numbers are 32-bit unsigned (RFC 3261 §8.1.1.5, RFC 4475 §3.1.2.4/§3.1.2.5).
MAX_CSEQ = 2**32 - 1

# Content-Length digits read before conversion: int() of a huge digit string is slow
# (and raises past 4300 digits); 10 digits already exceed MAX_MESSAGE_BYTES.
MAX_CONTENT_LENGTH_DIGITS = 10
