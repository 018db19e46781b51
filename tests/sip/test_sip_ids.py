"""Branch, tag and Call-ID generation: format and entropy."""

from __future__ import annotations

import os
import re

import pytest

from probes.sip.grammar import is_token
from probes.sip.ids import (
    POOL_REQUESTS,
    new_branch,
    new_branch_and_call_id_word,
    new_call_id,
    new_tag,
)
from probes.sip.message import parse_message


def test_branch_format() -> None:
    branch = new_branch()
    assert branch.startswith("z9hG4bK")  # RFC 3261 §8.1.1.7 magic cookie
    assert is_token(branch)
    # ≥ 64 random bits: 16 base64 characters after the cookie carry 96.
    assert len(branch) - 7 >= 16


def test_branches_do_not_repeat_and_look_random() -> None:
    branches = [new_branch()[7:] for _ in range(2_000)]
    assert len(set(branches)) == len(branches)
    # Every base64url character position varies: a counter or a clock would not.
    for position in range(16):
        assert len({b[position] for b in branches}) > 20


def test_tag_and_call_id() -> None:
    tags = {new_tag() for _ in range(1_000)}
    assert len(tags) == 1_000
    assert all(re.fullmatch(r"[0-9a-f]{16}", t) for t in tags)
    call_id = new_call_id("192.0.2.10")
    assert re.fullmatch(r"[0-9a-f]{24}@192\.0\.2\.10", call_id)
    assert new_call_id("[2001:db8::1]").endswith("@[2001:db8::1]")
    assert new_call_id("h") != new_call_id("h")


@pytest.mark.parametrize("host", ["", "a b", "x@y", "h\r\n"])
def test_call_id_refuses_a_host_that_is_not_a_word(host: str) -> None:
    with pytest.raises(ValueError):
        new_call_id(host)


def test_generated_ids_parse_in_a_message() -> None:
    data = (
        "OPTIONS sip:h SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.1;branch={new_branch()}\r\n"
        f"From: <sip:a@b>;tag={new_tag()}\r\n"
        "To: <sip:h>\r\n"
        f"Call-ID: {new_call_id('192.0.2.1')}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    assert parse_message(data).headers.get("CSeq") == "1 OPTIONS"


def test_pooled_request_ids_never_repeat_across_refills() -> None:
    pairs = [new_branch_and_call_id_word() for _ in range(3 * POOL_REQUESTS + 7)]
    words = [w for pair in pairs for w in pair]
    assert len(set(words)) == len(words)
    assert all(is_token(b) and b.startswith("z9hG4bK") and len(w) == 24 for b, w in pairs)
    for position in range(16):  # random, not a counter, in every character of the word
        assert len({w[position] for _, w in pairs}) == 16  # all hex digits occur


def test_a_forked_child_does_not_reuse_the_parents_pooled_ids() -> None:
    new_branch_and_call_id_word()  # the pool holds bytes the parent will hand out next
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, new_branch_and_call_id_word()[1].encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 100).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 24
    assert child != new_branch_and_call_id_word()[1]
