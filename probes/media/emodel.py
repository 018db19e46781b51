"""ITU-T G.107 E-model (narrowband) for G.711: R-factor from delay, loss and burstiness, and MOS.

R = Ro - Is - Id - Ie,eff + A (G.107 §7.1, eq. 7-1), every term computed from the
parameters of G.107 Table 3 (defaults below), so a call with no impairment rates R = 93.2.
Equation numbers are those of G.107 (06/2015); earlier editions number them 3-x.

What a test call gives: the absolute one-way (mouth-to-ear) delay Ta, the packet loss and how
bursty it is. Talker/listener echo (T, Tr) depends on the far end's echo control, which the
probe cannot see, so by default it stays at the Table 3 values (T = Tr = 0, i.e. echo fully
controlled); pass `talker_echo_delay_s` to model an echo returning after that one-way delay.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

# G.113 Appendix I (Table I.3): G.711 has Ie = 0; its packet-loss robustness Bpl is 25.1 with
# packet loss concealment (G.711 Appendix I PLC) and 4.3 without (random loss).
G711_IE = 0.0
G711_BPL_PLC = 25.1
G711_BPL_NO_PLC = 4.3

# G.107 Table 3 permitted ranges for the loss inputs; outside them the formula extrapolates.
PPL_RANGE_PERCENT = (0.0, 20.0)
BURST_R_RANGE = (1.0, 8.0)

# G.107 Annex B: MOS for R <= 0 and R >= 100.
MOS_MIN = 1.0
MOS_MAX = 4.5


@dataclass(slots=True, frozen=True)
class EModelParams:
    """G.107 Table 3 parameters, with its default values (names as in the standard)."""

    slr: float = 8.0  # send loudness rating, dB
    rlr: float = 2.0  # receive loudness rating, dB
    stmr: float = 15.0  # sidetone masking rating, dB
    lstr: float = 18.0  # listener sidetone rating, dB
    ds: float = 3.0  # D-value of telephone, send side
    dr: float = 3.0  # D-value of telephone, receive side (enters via LSTR = STMR + Dr)
    telr: float = 65.0  # talker echo loudness rating, dB
    wepl: float = 110.0  # weighted echo path loss, dB
    t_ms: float = 0.0  # mean one-way delay of the echo path, ms
    tr_ms: float = 0.0  # round-trip delay in a 4-wire loop, ms
    ta_ms: float = 0.0  # absolute delay in echo-free connections, ms
    qdu: float = 1.0  # number of quantization distortion units
    ie: float = 0.0  # equipment impairment factor
    bpl: float = 4.3  # packet-loss robustness factor
    ppl: float = 0.0  # random packet-loss probability, %
    burst_r: float = 1.0  # burst ratio (1: random loss)
    nc: float = -70.0  # circuit noise referred to the 0 dBr point, dBm0p
    nfor: float = -64.0  # noise floor at the receive side, dBmp
    ps: float = 35.0  # room noise at the send side, dB(A)
    pr: float = 35.0  # room noise at the receive side, dB(A)
    a: float = 0.0  # advantage factor
    mt_ms: float = 100.0  # minimum perceivable delay (delay sensitivity), ms
    st: float = 1.0  # delay sensitivity


DEFAULT_PARAMS = EModelParams()


@dataclass(slots=True, frozen=True)
class EModelResult:
    """Every term of R, so a report can say which impairment cost what."""

    ro: float
    is_: float
    idte: float
    idle: float
    idd: float
    ie_eff: float
    a: float

    @property
    def id(self) -> float:
        """Id = Idte + Idle + Idd (§7.4)."""
        return self.idte + self.idle + self.idd

    @property
    def r(self) -> float:
        """R = Ro - Is - Id - Ie,eff + A (eq. 7-1)."""
        return self.ro - self.is_ - self.id - self.ie_eff + self.a

    @property
    def mos(self) -> float:
        return mos_from_r(self.r)


def _lg(x: float) -> float:
    return math.log10(x)


def noise_sum(p: EModelParams) -> float:
    """No, the power addition of the noise sources, dBm0p (§7.2, eq. 7-3 and its terms)."""
    olr = p.slr + p.rlr
    nos = p.ps - p.slr - p.ds - 100 + 0.004 * (p.ps - olr - p.ds - 14) ** 2  # room noise, send
    pre = p.pr + 10 * _lg(1 + 10 ** ((10 - p.lstr) / 10))  # effective room noise, receive
    nor = p.rlr - 121 + pre + 0.008 * (pre - 35) ** 2  # room noise, receive
    nfo = p.nfor + p.rlr  # noise floor, receive
    return 10 * _lg(
        10 ** (p.nc / 10) + 10 ** (nos / 10) + 10 ** (nor / 10) + 10 ** (nfo / 10)
    )  # 7-3


def basic_signal_to_noise(p: EModelParams) -> float:
    """Ro = 15 - 1.5 (SLR + No) (eq. 7-2)."""
    return 15 - 1.5 * (p.slr + noise_sum(p))


def _stmro(p: EModelParams) -> float:
    """STMRo, sidetone masking including talker echo (§7.3)."""
    return -10 * _lg(10 ** (-p.stmr / 10) + math.exp(-p.t_ms / 4) * 10 ** (-p.telr / 10))


def _ist(p: EModelParams) -> float:
    """Ist, impairment from non-optimum sidetone (§7.3)."""
    s = _stmro(p)
    return (
        12 * math.pow(1 + math.pow((s - 13) / 6, 8), 1 / 8)
        - 28 * math.pow(1 + math.pow((s + 1) / 19.4, 35), 1 / 35)
        - 13 * math.pow(1 + math.pow((s - 3) / 33, 13), 1 / 13)
        + 29
    )


def simultaneous_impairment(p: EModelParams) -> float:
    """Is = Iolr + Ist + Iq (§7.3, eq. 7-8)."""
    no = noise_sum(p)
    ro = basic_signal_to_noise(p)
    olr = p.slr + p.rlr
    xolr = olr + 0.2 * (64 + no - p.rlr)
    iolr = 20 * (
        math.pow(1 + math.pow(xolr / 8, 8), 1 / 8) - xolr / 8
    )  # too-loud/too-quiet connection
    q = 37 - 15 * _lg(p.qdu)
    g = 1.07 + 0.258 * q + 0.0602 * q**2
    y = (ro - 100) / 15 + 46 / 8.4 - g / 9
    z = 46 / 30 - g / 40
    iq = 15 * _lg(1 + math.pow(10, y) + math.pow(10, z))  # quantizing distortion
    return iolr + _ist(p) + iq


def talker_echo_impairment(p: EModelParams) -> float:
    """Idte (§7.4, eqs. 7-19 .. 7-22); 0 for T < 1 ms, where echo is heard as sidetone."""
    if p.t_ms < 1:
        return 0.0
    ist = _ist(p)
    roe = -1.5 * (noise_sum(p) - p.rlr)  # 7-20
    terv = (
        p.telr - 40 * _lg((1 + p.t_ms / 10) / (1 + p.t_ms / 150)) + 6 * math.exp(-0.3 * p.t_ms**2)
    )  # 7-22
    if p.stmr < 9:
        terv += ist / 2  # §7.4: low sidetone masking makes echo more audible
    re = 80 + 2.5 * (terv - 14)  # 7-21
    idte = ((roe - re) / 2 + math.sqrt((roe - re) ** 2 / 4 + 100) - 1) * (
        1 - math.exp(-p.t_ms)
    )  # 7-19
    if p.stmr > 20:
        idte = math.sqrt(idte**2 + ist**2)  # §7.4: Idtes for STMR > 20 dB
    return idte


def listener_echo_impairment(p: EModelParams) -> float:
    """Idle (§7.4, eqs. 7-25, 7-26): about 0.15 even at Tr = 0, because WEPL is finite."""
    ro = basic_signal_to_noise(p)
    rle = 10.5 * (p.wepl + 7) * math.pow(p.tr_ms + 1, -0.25)  # 7-26
    return (ro - rle) / 2 + math.sqrt((ro - rle) ** 2 / 4 + 169)  # 7-25


def absolute_delay_impairment(p: EModelParams) -> float:
    """Idd (§7.4, eqs. 7-27, 7-28): 0 up to mT, then growing with log2(Ta / mT)."""
    if p.ta_ms <= p.mt_ms:
        return 0.0
    x = _lg(p.ta_ms / p.mt_ms) / _lg(2)  # 7-28
    e = 6 * p.st
    return 25 * (
        math.pow(1 + math.pow(x, e), 1 / e) - 3 * math.pow(1 + math.pow(x / 3, e), 1 / e) + 2
    )  # 7-27


def effective_equipment_impairment(ie: float, ppl: float, bpl: float, burst_r: float) -> float:
    """Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl) (§7.5, eq. 7-29); Ppl in %."""
    if not 0 <= ppl <= 100:
        raise ValueError(f"Ppl is a percentage 0..100, got {ppl}")
    if burst_r <= 0:
        raise ValueError(f"BurstR must be positive, got {burst_r}")
    if bpl <= 0:
        raise ValueError(f"Bpl must be positive, got {bpl}")
    return ie + (95 - ie) * ppl / (ppl / burst_r + bpl)


def evaluate(p: EModelParams = DEFAULT_PARAMS) -> EModelResult:
    """All terms of R for a full parameter set."""
    if p.ta_ms < 0 or p.t_ms < 0 or p.tr_ms < 0:
        raise ValueError(f"delays must not be negative: Ta={p.ta_ms} T={p.t_ms} Tr={p.tr_ms}")
    return EModelResult(
        ro=basic_signal_to_noise(p),
        is_=simultaneous_impairment(p),
        idte=talker_echo_impairment(p),
        idle=listener_echo_impairment(p),
        idd=absolute_delay_impairment(p),
        ie_eff=effective_equipment_impairment(p.ie, p.ppl, p.bpl, p.burst_r),
        a=p.a,
    )


def g711(
    one_way_delay_s: float,
    loss_ratio: float,
    *,
    burst_r: float = 1.0,
    plc: bool = True,
    talker_echo_delay_s: float = 0.0,
    params: EModelParams = DEFAULT_PARAMS,
) -> EModelResult:
    """R and MOS of a G.711 call: Ta = mouth-to-ear delay, loss ratio 0..1, burst ratio.

    `one_way_delay_s` should include packetization and jitter-buffer delay, not only the
    network's. `talker_echo_delay_s` > 0 sets T to it and Tr to twice it.
    """
    if one_way_delay_s < 0 or talker_echo_delay_s < 0:
        raise ValueError("delays must not be negative")
    if not 0 <= loss_ratio <= 1:
        raise ValueError(f"loss_ratio must be within 0..1, got {loss_ratio}")
    p = replace(
        params,
        ta_ms=one_way_delay_s * 1000,
        t_ms=talker_echo_delay_s * 1000,
        tr_ms=2 * talker_echo_delay_s * 1000,
        ie=G711_IE,
        bpl=G711_BPL_PLC if plc else G711_BPL_NO_PLC,
        ppl=loss_ratio * 100,
        burst_r=burst_r,
    )
    return evaluate(p)


def mos_from_r(r: float) -> float:
    """MOS_CQE from R (G.107 Annex B): 1 + 0.035 R + R (R - 60)(100 - R) 7e-6 for 0 < R < 100."""
    if r <= 0:
        return MOS_MIN
    if r >= 100:
        return MOS_MAX
    return 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6


def estimate_burst_r(lost: Sequence[bool]) -> float:
    """BurstR from a per-packet loss pattern with the 2-state Markov (Gilbert) model.

    G.107 §7.5: BurstR = 1 / (p + q), p = P(loss | previous received),
    q = P(received | previous lost). Clamped to BURST_R_RANGE, G.107 Table 3's permitted
    range: below 1 (loss spread more evenly than random) and above 8 the model is not defined.
    Returns 1 (random) when there is no loss.
    """
    if not any(lost):
        return 1.0
    after_received = after_lost = to_lost = to_received = 0
    for prev, cur in itertools.pairwise(lost):
        if prev:
            after_lost += 1
            to_received += not cur
        else:
            after_received += 1
            to_lost += cur
    p = to_lost / after_received if after_received else 0.0
    # Only the last packet lost: no burst length observed yet, take it as a burst of one.
    q = to_received / after_lost if after_lost else 1.0
    if p + q == 0:
        return BURST_R_RANGE[1]  # every packet lost: as bursty as the model allows
    return min(max(1 / (p + q), BURST_R_RANGE[0]), BURST_R_RANGE[1])


def burst_r_from_mean_burst(loss_ratio: float, mean_burst_packets: float) -> float:
    """BurstR from the loss ratio and the mean length of loss bursts in packets (G.107 §7.5).

    In the Gilbert model the mean burst length is 1/q, and BurstR = (1 - Ppl) / q; useful
    when only aggregate loss-period statistics are available (pjsua2's stream stats).
    """
    if not 0 <= loss_ratio < 1:
        raise ValueError(f"loss_ratio must be within 0..1 (exclusive of 1), got {loss_ratio}")
    if mean_burst_packets < 1:
        raise ValueError(f"a loss burst is at least one packet, got {mean_burst_packets}")
    value = (1 - loss_ratio) * mean_burst_packets
    return min(max(value, BURST_R_RANGE[0]), BURST_R_RANGE[1])
