"""The pure RFC 3263 planner and RFC 2782 ordering (probes/dns): answers as values in, targets
or a typed failure out; no DNS server involved."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probes.dns.records import AddressRecord, Answer, NaptrRecord, Query, SrvRecord
from probes.dns.rfc3263 import (
    Destination,
    Failure,
    Planner,
    Resolution,
    Target,
    plan_all,
    usable_naptr,
)
from probes.dns.srv_order import weighted_order

DOMAIN = "carrier.example"


def first(a: int, b: int) -> int:
    """A randint that always picks the low end: the first positive-weight record wins."""
    return a


def last(a: int, b: int) -> int:
    return b


def naptr(order: int, pref: int, service: str, replacement: str, ttl: int = 300) -> NaptrRecord:
    return NaptrRecord(order, pref, "s", service, "", replacement, ttl)


def answers(*items: tuple[str, str, tuple[object, ...]]) -> dict[Query, Answer]:
    out = {}
    for name, rtype, records in items:
        query = Query(name, rtype)  # type: ignore[arg-type]
        out[query] = Answer(query, records)  # type: ignore[arg-type]
    return out


def addr(address: str, ttl: int = 300) -> AddressRecord:
    return AddressRecord(address, ttl)


def resolved(result: Resolution | Failure) -> Resolution:
    assert isinstance(result, Resolution), result
    return result


def brief(result: Resolution | Failure) -> list[tuple[str, int, str, str]]:
    return [(t.host, t.port, t.transport, t.address) for t in resolved(result).targets]


SIP = Destination("sip", DOMAIN)
SIPS = Destination("sips", DOMAIN)

# NAPTR → SRV → A/AAAA, the shape a carrier publishes.
FULL = answers(
    (DOMAIN, "NAPTR", (
        naptr(20, 10, "SIPS+D2T", f"_sips._tcp.{DOMAIN}", ttl=600),
        naptr(10, 20, "SIP+D2U", f"_sip._udp.{DOMAIN}", ttl=600),
        naptr(10, 10, "SIP+D2T", f"_sip._tcp.{DOMAIN}.", ttl=600),
    )),
    (f"_sip._tcp.{DOMAIN}", "SRV", (
        SrvRecord(20, 0, 5070, f"backup.{DOMAIN}.", 120),
        SrvRecord(10, 60, 5060, f"sbc1.{DOMAIN}.", 120),
        SrvRecord(10, 40, 5060, f"sbc2.{DOMAIN}.", 120),
    )),
    (f"_sip._udp.{DOMAIN}", "SRV", (SrvRecord(10, 0, 5060, f"sbc1.{DOMAIN}", 90),)),
    (f"_sips._tcp.{DOMAIN}", "SRV", (SrvRecord(10, 0, 5061, f"tls.{DOMAIN}", 300),)),
    (f"sbc1.{DOMAIN}", "A", (addr("192.0.2.1", 60),)),
    (f"sbc1.{DOMAIN}", "AAAA", (addr("2001:db8::1", 30),)),
    (f"sbc2.{DOMAIN}", "A", (addr("192.0.2.2"), addr("192.0.2.3"))),
    (f"backup.{DOMAIN}", "A", (addr("198.51.100.9"),)),
    (f"tls.{DOMAIN}", "A", (addr("192.0.2.10"),)),
)  # fmt: skip


def test_naptr_srv_address_in_rfc_order() -> None:
    result = resolved(plan_all(SIP, FULL, randint=first))
    assert brief(result) == [
        (f"sbc1.{DOMAIN}", 5060, "tcp", "192.0.2.1"),  # NAPTR 10/10, SRV prio 10, weight 60
        (f"sbc1.{DOMAIN}", 5060, "tcp", "2001:db8::1"),
        (f"sbc2.{DOMAIN}", 5060, "tcp", "192.0.2.2"),
        (f"sbc2.{DOMAIN}", 5060, "tcp", "192.0.2.3"),
        (f"backup.{DOMAIN}", 5070, "tcp", "198.51.100.9"),  # SRV prio 20
        (f"sbc1.{DOMAIN}", 5060, "udp", "192.0.2.1"),  # NAPTR 10/20
        (f"sbc1.{DOMAIN}", 5060, "udp", "2001:db8::1"),
        (f"tls.{DOMAIN}", 5061, "tls", "192.0.2.10"),  # NAPTR order 20
    ]
    assert result.ttl == 30
    assert [t.ttl for t in result.targets[:3]] == [60, 30, 120]
    assert result.targets[1].family == "ipv6"


def test_weight_decides_within_a_priority() -> None:
    result = plan_all(SIP, FULL, randint=last)
    # The largest draw passes every record but the last of the running sum: sbc2 first.
    assert [t.host for t in resolved(result).targets[:2]] == [f"sbc2.{DOMAIN}"] * 2


def test_sips_keeps_only_sips_naptr() -> None:
    result = plan_all(SIPS, FULL, randint=first)
    assert brief(result) == [(f"tls.{DOMAIN}", 5061, "tls", "192.0.2.10")]


def test_unusable_naptr_falls_back_to_srv() -> None:
    table = answers(
        (DOMAIN, "NAPTR", (
            naptr(10, 10, "SIP+D2S", f"_sip._sctp.{DOMAIN}"),  # SCTP: not supported
            NaptrRecord(10, 20, "a", "SIP+D2U", "", f"x.{DOMAIN}", 300),  # not terminal "s"
            NaptrRecord(10, 30, "s", "SIP+D2U", "!^.*$!sip:x@y!", "", 300),  # no replacement
        )),
        (f"_sip._tcp.{DOMAIN}", "SRV", (SrvRecord(0, 0, 5080, f"a.{DOMAIN}", 300),)),
        (f"a.{DOMAIN}", "A", (addr("192.0.2.7"),)),
    )  # fmt: skip
    assert brief(plan_all(SIP, table, randint=first)) == [(f"a.{DOMAIN}", 5080, "tcp", "192.0.2.7")]


def test_srv_only_asks_all_three_services_at_once() -> None:
    planner = Planner(SIP, randint=first)
    assert planner.queries() == (Query(DOMAIN, "NAPTR"),)
    planner.feed(Answer(Query(DOMAIN, "NAPTR"), rcode="noerror", negative_ttl=45))
    assert planner.queries() == (
        Query(f"_sip._udp.{DOMAIN}", "SRV"),
        Query(f"_sip._tcp.{DOMAIN}", "SRV"),
        Query(f"_sips._tcp.{DOMAIN}", "SRV"),
    )
    udp = Query(f"_sip._udp.{DOMAIN}", "SRV")
    planner.feed(Answer(udp, (SrvRecord(1, 1, 5099, f"u.{DOMAIN}", 100),)))
    planner.feed(Answer(Query(f"_sips._tcp.{DOMAIN}", "SRV"), rcode="nxdomain"))
    planner.feed(Answer(Query(f"_sip._tcp.{DOMAIN}", "SRV"), rcode="nxdomain"))
    assert planner.queries() == (Query(f"u.{DOMAIN}", "A"), Query(f"u.{DOMAIN}", "AAAA"))
    planner.feed(Answer(Query(f"u.{DOMAIN}", "AAAA")))
    planner.feed(Answer(Query(f"u.{DOMAIN}", "A"), (addr("192.0.2.5", 200),)))
    assert planner.done and planner.queries() == ()
    result = resolved(planner.result())
    assert brief(result) == [(f"u.{DOMAIN}", 5099, "udp", "192.0.2.5")]
    assert result.ttl == 45  # the missing NAPTR is only known absent for its negative TTL


def test_srv_target_root_means_not_offered() -> None:
    table = answers(
        (f"_sip._udp.{DOMAIN}", "SRV", (SrvRecord(0, 0, 0, "", 300),)),
        (f"_sip._tcp.{DOMAIN}", "SRV", (SrvRecord(0, 0, 5060, f"t.{DOMAIN}", 300),)),
        (f"t.{DOMAIN}", "A", (addr("192.0.2.8"),)),
    )
    assert brief(plan_all(SIP, table, randint=first)) == [(f"t.{DOMAIN}", 5060, "tcp", "192.0.2.8")]


@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        (SIP, [(DOMAIN, 5060, "udp", "192.0.2.20"), (DOMAIN, 5060, "udp", "2001:db8::20")]),
        (SIPS, [(DOMAIN, 5061, "tls", "192.0.2.20"), (DOMAIN, 5061, "tls", "2001:db8::20")]),
        (Destination("sip", DOMAIN, transport="tcp"),
         [(DOMAIN, 5060, "tcp", "192.0.2.20"), (DOMAIN, 5060, "tcp", "2001:db8::20")]),
    ],
)  # fmt: skip
def test_address_fallback_uses_default_port(
    destination: Destination, expected: list[tuple[str, int, str, str]]
) -> None:
    table = answers((DOMAIN, "A", (addr("192.0.2.20"),)), (DOMAIN, "AAAA", (addr("2001:db8::20"),)))
    assert brief(plan_all(destination, table, randint=first)) == expected


def test_families_choose_and_order_address_lookups() -> None:
    table = answers((DOMAIN, "A", (addr("192.0.2.20"),)), (DOMAIN, "AAAA", (addr("2001:db8::20"),)))
    dest = Destination("sip", DOMAIN, port=5062)
    six_first = plan_all(dest, table, randint=first, families=("ipv6", "ipv4"))
    assert [t.address for t in resolved(six_first).targets] == ["2001:db8::20", "192.0.2.20"]
    only_six = plan_all(dest, table, randint=first, families=("ipv6",))
    assert brief(only_six) == [(DOMAIN, 5062, "udp", "2001:db8::20")]


def test_explicit_port_skips_naptr_and_srv() -> None:
    planner = Planner(Destination("sip", DOMAIN, port=5070, transport="tcp"), randint=first)
    assert planner.queries() == (Query(DOMAIN, "A"), Query(DOMAIN, "AAAA"))


def test_explicit_transport_asks_its_srv_only() -> None:
    planner = Planner(Destination("sip", DOMAIN, transport="tls"), randint=first)
    assert planner.queries() == (Query(f"_sips._tcp.{DOMAIN}", "SRV"),)


@pytest.mark.parametrize(("host", "family"), [("192.0.2.1", "ipv4"), ("2001:db8::1", "ipv6")])
def test_numeric_host_needs_no_dns(host: str, family: str) -> None:
    planner = Planner(Destination("sips", host), randint=first)
    assert planner.done and planner.queries() == ()
    assert planner.result() == Resolution((Target(host, 5061, "tls", host, family, None),), None)  # type: ignore[arg-type]


def test_nxdomain_everywhere() -> None:
    result = plan_all(SIP, {}, randint=first)
    assert isinstance(result, Failure) and result.kind == "nxdomain"
    assert DOMAIN in result.detail


def test_names_exist_but_no_address() -> None:
    table = answers((DOMAIN, "NAPTR", ()), (DOMAIN, "A", ()))
    result = plan_all(SIP, table, randint=first)
    assert isinstance(result, Failure) and result.kind == "no_records"


@pytest.mark.parametrize(
    ("rcode", "kind"), [("servfail", "servfail"), ("refused", "servfail"), ("timeout", "timeout")]
)
def test_server_errors_end_the_plan(rcode: str, kind: str) -> None:
    planner = Planner(SIP, randint=first)
    planner.feed(Answer(Query(DOMAIN, "NAPTR")))
    planner.feed(Answer(Query(f"_sip._tcp.{DOMAIN}", "SRV"), rcode=rcode, detail="x"))  # type: ignore[arg-type]
    assert planner.done and planner.queries() == ()
    result = planner.result()
    assert isinstance(result, Failure) and result.kind == kind
    assert f"SRV _sip._tcp.{DOMAIN}" in result.detail


def test_feeding_the_unasked_is_an_error() -> None:
    planner = Planner(SIP, randint=first)
    with pytest.raises(RuntimeError):
        planner.result()
    with pytest.raises(ValueError):
        planner.feed(Answer(Query(DOMAIN, "A")))


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sip:carrier.example", Destination("sip", DOMAIN)),
        ("sips:carrier.example", Destination("sips", DOMAIN)),
        ("sips:carrier.example;transport=tcp", Destination("sips", DOMAIN, transport="tls")),
        ("sip:u@carrier.example:5070;transport=TCP", Destination("sip", DOMAIN, 5070, "tcp")),
        ("sip:x.example;maddr=carrier.example", Destination("sip", DOMAIN)),
        ("sip:[2001:db8::1]", Destination("sip", "2001:db8::1")),
    ],
)
def test_destination_from_uri(uri: str, expected: Destination) -> None:
    assert Destination.from_uri(uri) == expected


@pytest.mark.parametrize(
    "uri", ["sip:carrier.example;transport=sctp", "sips:carrier.example;transport=udp", "http://x"]
)
def test_destination_rejects(uri: str) -> None:
    with pytest.raises(ValueError):
        Destination.from_uri(uri)


# -- RFC 2782 ordering ------------------------------------------------------------------------

srv_records = st.lists(
    st.builds(
        SrvRecord,
        priority=st.integers(0, 3),
        weight=st.integers(0, 5),
        port=st.integers(1, 65535),
        target=st.sampled_from(["", "a", "b", "c", "d"]),
        ttl=st.integers(0, 10),
    ),
    max_size=8,
)


@given(srv_records, st.randoms(use_true_random=False))
def test_weighted_order_is_a_priority_sorted_permutation(
    records: list[SrvRecord], rng: random.Random
) -> None:
    out = weighted_order(records, rng.randint)
    assert sorted(out, key=repr) == sorted((r for r in records if r.target), key=repr)
    assert [r.priority for r in out] == sorted(r.priority for r in out)


def draws(values: list[int]) -> Callable[[int, int], int]:
    it: Iterator[int] = iter(values)

    def randint(a: int, b: int) -> int:
        value = next(it)
        assert a <= value <= b
        return value

    return randint


def test_weighted_order_follows_the_running_sum() -> None:
    zero, three, one = (SrvRecord(0, w, 1, n, 1) for w, n in ((0, "z"), (3, "t"), (1, "o")))
    # Sum 4; zero weight first, then by name ("o" < "t"): 0 → zero; 1 → one; 2..4 → three.
    picks = {d: weighted_order([three, one, zero], draws([d, 0, 0]))[0].target for d in range(5)}
    assert picks == {0: "z", 1: "o", 2: "t", 3: "t", 4: "t"}


@given(st.permutations([SrvRecord(0, w, 1, n, 1) for w, n in ((0, "z"), (3, "t"), (1, "o"))]))
def test_weighted_order_ignores_rrset_order(records: list[SrvRecord]) -> None:
    assert [r.target for r in weighted_order(records, last)] == ["t", "o", "z"]


def test_weighted_order_draws_once_per_pick() -> None:
    records = [SrvRecord(0, 1, 1, "a", 1), SrvRecord(0, 1, 1, "b", 1), SrvRecord(5, 1, 1, "c", 1)]
    calls: list[tuple[int, int]] = []

    def randint(a: int, b: int) -> int:
        calls.append((a, b))
        return b

    assert [r.target for r in weighted_order(records, randint)] == ["b", "a", "c"]
    assert calls == [(0, 2), (0, 1), (0, 1)]


@given(st.permutations(list(FULL)))
def test_answer_order_does_not_matter(order: list[Query]) -> None:
    planner = Planner(SIP, randint=first)
    while not planner.done:
        pending = set(planner.queries())
        for query in [q for q in order if q in pending] + sorted(pending - set(order), key=repr):
            planner.feed(FULL.get(query, Answer(query, rcode="nxdomain")))
    assert planner.result() == plan_all(SIP, FULL, randint=first)


def test_usable_naptr_orders_by_order_then_preference() -> None:
    records = [
        naptr(2, 1, "SIP+D2U", "c"),
        naptr(1, 9, "sip+d2t", "b"),
        naptr(1, 1, "SIP+D2U", "a"),
    ]
    assert [r.replacement for r in usable_naptr(records, "sip")] == ["a", "b", "c"]
