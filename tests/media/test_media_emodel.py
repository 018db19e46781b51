"""ITU-T G.107 E-model: expected values worked by hand from the standard's formulas.

Sources of the expected numbers:
- G.107 §7.7 (default values): "R = 93.2" for all Table 3 defaults.
- Ro, Is, Idle at the defaults: G.107 §7.2-§7.4 worked by hand:
  Nos = 35-8-3-100+0.004*(35-10-3-14)**2 = -75.744; Pre = 35+10lg(1+10**-0.8) = 35.639;
  Nor = 2-121+35.639+0.008*0.639**2 = -83.358; Nfo = -64+2 = -62; Nc = -70;
  No = 10lg(10**-7 + 10**-7.5744 + 10**-8.3358 + 10**-6.2) = -61.18;
  Ro = 15-1.5*(8-61.18) = 94.77.  Xolr = 10+0.2*(64-61.18-2) = 10.164, Iolr = 0.44;
  STMRo = 15.0, Ist = 0.00; Q = 37, G = 93.03, Y = -5.209, Z = -0.792, Iq = 0.97;
  Is = 1.41.  Rle = 10.5*117 = 1228.5, Idle = (94.77-1228.5)/2 + sqrt(566.87**2+169) = 0.15.
  R = 94.77 - 1.41 - 0.15 = 93.21.
- Idd (§7.4): X = log2(Ta/100); Idd = 25*((1+X**6)**(1/6) - 3*(1+(X/3)**6)**(1/6) + 2):
  Ta=200: X=1, 25*(1.122462 - 3*1.000229 + 2) = 3.044;
  Ta=400: X=2, 25*(65**(1/6) - 3*(1+(2/3)**6)**(1/6) + 2) = 25*(2.005175-3.042373+2) = 24.07;
  Ta=150: X=0.585, 25*((1+0.0401)**(1/6) - 3*(1+0.0000550)**(1/6) + 2) = 0.164.
- Ie,eff (§7.5): 95*Ppl/(Ppl/BurstR + Bpl), Ie = 0 for G.711; Bpl 25.1 (PLC) / 4.3 (no PLC)
  from G.113 Appendix I.
- MOS (Annex B): 1 + 0.035R + R(R-60)(100-R)*7e-6, 1 for R <= 0 and 4.5 for R >= 100.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probes.media import emodel
from probes.media.emodel import (
    BURST_R_RANGE,
    DEFAULT_PARAMS,
    G711_BPL_NO_PLC,
    G711_BPL_PLC,
    EModelParams,
    burst_r_from_mean_burst,
    effective_equipment_impairment,
    estimate_burst_r,
    mos_from_r,
)


def test_defaults_give_r_93_2() -> None:
    result = emodel.evaluate()
    assert result.ro == pytest.approx(94.77, abs=0.01)
    assert result.is_ == pytest.approx(1.41, abs=0.01)
    assert result.idte == 0.0  # T = 0 < 1 ms
    assert result.idle == pytest.approx(0.15, abs=0.01)
    assert result.idd == 0.0
    assert result.ie_eff == 0.0
    assert result.r == pytest.approx(93.2, abs=0.05)
    assert result.mos == pytest.approx(4.41, abs=0.005)


def test_clean_g711_call_meets_the_issue_mos() -> None:
    """Issue 3: a clean loopback call has MOS >= 4.3 (Ta of a few ms, no loss)."""
    assert emodel.g711(0.005, 0.0).mos >= 4.3


@pytest.mark.parametrize(
    ("ta_ms", "idd"),
    [(0, 0.0), (50, 0.0), (100, 0.0), (150, 0.164), (200, 3.044), (400, 24.07)],
)
def test_absolute_delay_impairment(ta_ms: float, idd: float) -> None:
    params = EModelParams(ta_ms=ta_ms)
    assert emodel.absolute_delay_impairment(params) == pytest.approx(idd, abs=0.005)
    assert emodel.g711(ta_ms / 1000, 0.0).r == pytest.approx(93.206 - idd, abs=0.01)


@pytest.mark.parametrize(
    ("ppl", "bpl", "burst_r", "ie_eff"),
    [
        (0.0, G711_BPL_PLC, 1.0, 0.0),
        (1.0, G711_BPL_PLC, 1.0, 95 / 26.1),  # 3.64: G.711 with PLC, 1 % random loss
        (2.0, G711_BPL_PLC, 1.0, 190 / 27.1),
        (2.0, G711_BPL_PLC, 2.0, 190 / 26.1),  # burstier loss costs more
        (1.0, G711_BPL_NO_PLC, 1.0, 95 / 5.3),  # 17.9: without PLC
        (5.0, G711_BPL_PLC, 1.0, 475 / 30.1),
    ],
)
def test_effective_equipment_impairment(
    ppl: float, bpl: float, burst_r: float, ie_eff: float
) -> None:
    assert effective_equipment_impairment(0.0, ppl, bpl, burst_r) == pytest.approx(ie_eff)


def test_g711_loss_enters_as_ie_eff() -> None:
    base = emodel.evaluate().r
    assert emodel.g711(0.0, 0.01).r == pytest.approx(base - 95 / 26.1)
    assert emodel.g711(0.0, 0.01, plc=False).r == pytest.approx(base - 95 / 5.3)
    assert emodel.g711(0.0, 0.02, burst_r=2.0).r == pytest.approx(base - 190 / 26.1)


@pytest.mark.parametrize(
    ("r", "mos"),
    [
        (-10.0, 1.0),
        (0.0, 1.0),
        (50.0, 2.575),  # 1 + 1.75 + 50*(-10)*50*7e-6
        (60.0, 3.1),
        (70.0, 3.597),  # 1 + 2.45 + 70*10*30*7e-6
        (80.0, 4.024),
        (90.0, 4.339),
        (93.2, 4.409),
        (100.0, 4.5),
        (120.0, 4.5),
    ],
)
def test_mos_from_r_annex_b(r: float, mos: float) -> None:
    assert mos_from_r(r) == pytest.approx(mos, abs=0.0005)


def test_talker_echo_is_opt_in() -> None:
    """With T = Ta (echo returning after the one-way delay) Idte adds to the delay impairment."""
    no_echo = emodel.g711(0.15, 0.0)
    echo = emodel.g711(0.15, 0.0, talker_echo_delay_s=0.15)
    assert no_echo.idte == 0.0
    assert echo.idte > 0.0
    assert echo.r < no_echo.r


@settings(max_examples=60, deadline=None)
@given(
    ta=st.floats(min_value=0.0, max_value=0.8),
    extra_delay=st.floats(min_value=0.001, max_value=0.3),
    loss=st.floats(min_value=0.0, max_value=0.2),
    extra_loss=st.floats(min_value=0.001, max_value=0.1),
)
def test_r_never_improves_with_more_delay_or_loss(
    ta: float, extra_delay: float, loss: float, extra_loss: float
) -> None:
    r = emodel.g711(ta, loss).r
    assert emodel.g711(ta + extra_delay, loss).r <= r + 1e-9
    assert emodel.g711(ta, loss + extra_loss).r < r
    assert 1.0 <= emodel.g711(ta, loss).mos <= 4.5


@pytest.mark.parametrize(
    ("pattern", "burst_r"),
    [
        ([False] * 100, 1.0),  # no loss: random by definition
        ([True, False, False, False] * 50, 1.0),  # isolated losses: below 1, clamped to 1
        # 4 lost then 16 received: p = 1/16, q = 1/4 -> 1/(p+q) = 3.2 (edge transitions aside)
        (([True] * 4 + [False] * 16) * 50, 3.2),
        ([True] * 50 + [False] * 50, BURST_R_RANGE[1]),  # one long burst: 1/q = 50, clamped to 8
        ([True] * 10, BURST_R_RANGE[1]),  # nothing but loss
    ],
)
def test_estimate_burst_r(pattern: list[bool], burst_r: float) -> None:
    assert estimate_burst_r(pattern) == pytest.approx(burst_r, abs=0.05)


def test_burst_r_from_mean_burst_matches_the_gilbert_estimate() -> None:
    # Ppl = 4/20 = 0.2, mean burst 4 packets: BurstR = (1 - 0.2) * 4 = 3.2
    assert burst_r_from_mean_burst(0.2, 4.0) == pytest.approx(3.2)
    assert burst_r_from_mean_burst(0.01, 1.0) == 1.0  # single losses are random loss


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: emodel.g711(-0.1, 0.0), "negative"),
        (lambda: emodel.g711(0.0, 1.5), "loss_ratio"),
        (lambda: effective_equipment_impairment(0.0, 1.0, 25.1, 0.0), "BurstR"),
        (lambda: effective_equipment_impairment(0.0, 101.0, 25.1, 1.0), "Ppl"),
        (lambda: burst_r_from_mean_burst(0.1, 0.5), "at least one packet"),
        (lambda: emodel.evaluate(EModelParams(ta_ms=-1)), "negative"),
    ],
)
def test_bad_input_is_a_clear_error(call: object, match: str) -> None:
    assert callable(call)
    with pytest.raises(ValueError, match=match):
        call()


def test_params_default_to_table_3() -> None:
    assert (DEFAULT_PARAMS.slr, DEFAULT_PARAMS.rlr, DEFAULT_PARAMS.stmr, DEFAULT_PARAMS.lstr) == (
        8.0,
        2.0,
        15.0,
        18.0,
    )
    assert (DEFAULT_PARAMS.telr, DEFAULT_PARAMS.wepl, DEFAULT_PARAMS.qdu, DEFAULT_PARAMS.bpl) == (
        65.0,
        110.0,
        1.0,
        4.3,
    )
    assert (DEFAULT_PARAMS.nc, DEFAULT_PARAMS.nfor, DEFAULT_PARAMS.ps, DEFAULT_PARAMS.pr) == (
        -70.0,
        -64.0,
        35.0,
        35.0,
    )
