"""Links a served chain, leaf first, to a trust anchor by issuer/subject names and signatures.

This is the hand check behind `CertReport.chain_complete` and the reasons that name *why* a
chain fails (cryptography's path validator only says that it failed, in free text).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature

ChainProblem = Literal["self_signed", "untrusted_root", "incomplete_chain", "bad_signature"]


@dataclass(frozen=True, slots=True)
class ChainLink:
    """The outcome of linking: `path` is the leaf and the served certificates that chain from it
    (in order); `anchor` the trust anchor that issued the last of them, when one did."""

    path: tuple[x509.Certificate, ...]
    anchor: x509.Certificate | None
    problem: ChainProblem | None

    @property
    def complete(self) -> bool:
        return self.anchor is not None and self.problem is None


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when `issuer`'s subject is `cert`'s issuer and `issuer`'s key verifies its signature."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def is_self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject and issued_by(cert, cert)


def link_chain(
    served: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate]
) -> ChainLink:
    """Walk from the leaf (`served[0]`) through the served certificates to a trust anchor.

    The problem, when the walk does not reach an anchor:

    - ``self_signed``: the leaf signed itself (and it is not itself a trust anchor's subject);
    - ``bad_signature``: a served certificate or anchor carries the issuer's name but its key
      does not verify the signature;
    - ``untrusted_root``: the walk ended at a self-signed certificate that is no trust anchor,
      or at a served CA certificate (not the leaf) whose issuer is neither served nor trusted;
    - ``incomplete_chain``: the leaf's issuer is neither served nor a trust anchor (the server
      sends the leaf only, without its intermediate).

    Served certificates that do not link (extra, out-of-order duplicates) are ignored, as
    TLS clients do.
    """
    if not served:
        raise ValueError("empty chain")
    current = served[0]
    path = [current]
    pool = list(served[1:])
    while True:
        named = [a for a in anchors if a.subject == current.issuer]
        for anchor in named:
            if issued_by(current, anchor):
                return ChainLink(tuple(path), anchor, None)
        if is_self_signed(current):
            problem: ChainProblem = "self_signed" if len(path) == 1 else "untrusted_root"
            return ChainLink(tuple(path), None, problem)
        candidates = [c for c in pool if c.subject == current.issuer]
        if not candidates:
            if named:
                problem = "bad_signature"
            elif len(path) == 1:
                problem = "incomplete_chain"
            else:
                problem = "untrusted_root"
            return ChainLink(tuple(path), None, problem)
        nxt = next((c for c in candidates if issued_by(current, c)), None)
        if nxt is None:
            return ChainLink(tuple(path), None, "bad_signature")
        pool.remove(nxt)
        path.append(nxt)
        current = nxt
