"""Sans-I/O SIP: parse and serialize messages, frame streams, run client transactions, digest.

Nothing here does I/O or reads a clock: bytes and `now_ns` in, values and bytes out.
"""

from probes.sip.digest import (
    DigestChallenge,
    authorization_header,
    parse_challenge,
    select_challenge,
)
from probes.sip.errors import DigestError, SipParseError
from probes.sip.framing import StreamFramer
from probes.sip.headers import (
    Headers,
    NameAddr,
    Via,
    parse_content_length,
    parse_cseq,
    parse_name_addr,
    parse_via,
)
from probes.sip.ids import new_branch, new_call_id, new_tag
from probes.sip.message import (
    SipMessage,
    SipRequest,
    SipResponse,
    parse_message,
    serialize,
    transaction_key,
)
from probes.sip.transaction import (
    NonInviteClientTransaction,
    TimerAction,
    TransactionState,
)
from probes.sip.uri import SipUri, default_port

__all__ = [
    "DigestChallenge",
    "DigestError",
    "Headers",
    "NameAddr",
    "NonInviteClientTransaction",
    "SipMessage",
    "SipParseError",
    "SipRequest",
    "SipResponse",
    "SipUri",
    "StreamFramer",
    "TimerAction",
    "TransactionState",
    "Via",
    "authorization_header",
    "default_port",
    "new_branch",
    "new_call_id",
    "new_tag",
    "parse_challenge",
    "parse_content_length",
    "parse_cseq",
    "parse_message",
    "parse_name_addr",
    "parse_via",
    "select_challenge",
    "serialize",
    "transaction_key",
]
