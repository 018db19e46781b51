"""G.711 codecs (against the classic reference values and, where present, audioop) and the
Goertzel tone detector: a tone is found, silence, noise and other tones are not."""

from __future__ import annotations

import importlib
import math
import random
import warnings
from array import array
from types import ModuleType

import pytest

from probes.media.tone import (
    MIN_TONE_DBOV,
    PCM16_MAX,
    REFERENCE_TONE_HZ,
    alaw_decode,
    alaw_encode,
    detect_tone,
    reference_tone,
    tone_coverage,
    tone_power,
    ulaw_decode,
    ulaw_encode,
)

RATE = 8000
ALL_PCM16 = array("h", range(-32768, 32768))


def _audioop() -> ModuleType | None:
    """CPython's audioop (removed in 3.13) as an independent oracle, when it exists."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return importlib.import_module("audioop")
        except ImportError:
            return None


AUDIOOP = _audioop()


# (codec byte, linear value) pairs of the G.711 reference tables (Sun g711.c, ITU-T G.711
# Tables 1a/2a: the extreme and the zero code words).
@pytest.mark.parametrize(
    ("code", "linear"),
    [(0x00, -32124), (0x80, 32124), (0xFF, 0), (0x7F, 0), (0x7E, -8), (0xFE, 8)],
)
def test_ulaw_reference_values(code: int, linear: int) -> None:
    assert ulaw_decode(bytes([code]))[0] == linear


@pytest.mark.parametrize(
    ("code", "linear"),
    [(0xAA, 32256), (0x2A, -32256), (0xD5, 8), (0x55, -8)],
)
def test_alaw_reference_values(code: int, linear: int) -> None:
    assert alaw_decode(bytes([code]))[0] == linear


@pytest.mark.parametrize(
    ("sample", "ulaw", "alaw"),
    [(0, 0xFF, 0xD5), (32767, 0x80, 0xAA), (-32768, 0x00, 0x2A)],
)
def test_encode_reference_values(sample: int, ulaw: int, alaw: int) -> None:
    assert ulaw_encode([sample]) == bytes([ulaw])
    assert alaw_encode([sample]) == bytes([alaw])


def test_every_code_word_round_trips() -> None:
    codes = bytes(range(256))
    # mu-law has two zeros (0x7F = -0, 0xFF = +0); -0 encodes back as +0.
    expected_ulaw = bytes(0xFF if c == 0x7F else c for c in codes)
    assert ulaw_encode(ulaw_decode(codes)) == expected_ulaw
    assert alaw_encode(alaw_decode(codes)) == codes


@pytest.mark.parametrize(
    ("encode", "decode", "dropped_bits", "extreme"),
    [(ulaw_encode, ulaw_decode, 2, 32124), (alaw_encode, alaw_decode, 3, 32256)],
)
def test_quantization_error_is_half_a_step(
    encode: object, decode: object, dropped_bits: int, extreme: int
) -> None:
    """The top segment's step is 1024 on the 16-bit scale; decoding gives the interval's middle,
    so the error is <= 512, plus the low bits G.711 never sees (14-bit mu-law, 13-bit A-law).
    Beyond the largest code word's value, everything decodes to that value (clipping)."""
    assert callable(encode) and callable(decode)
    decoded = decode(encode(ALL_PCM16))
    for x, y in zip(ALL_PCM16, decoded, strict=True):
        if abs(x) <= extreme:
            assert abs(x - y) <= 512 + 2**dropped_bits - 1, x
        else:
            assert y == (extreme if x > 0 else -extreme), x


@pytest.mark.skipif(AUDIOOP is None, reason="audioop is gone (Python >= 3.13)")
def test_matches_audioop_on_every_sample_and_code() -> None:
    assert AUDIOOP is not None
    raw = ALL_PCM16.tobytes()
    codes = bytes(range(256))
    assert ulaw_encode(ALL_PCM16) == AUDIOOP.lin2ulaw(raw, 2)
    assert alaw_encode(ALL_PCM16) == AUDIOOP.lin2alaw(raw, 2)
    assert ulaw_decode(codes).tobytes() == AUDIOOP.ulaw2lin(codes, 2)
    assert alaw_decode(codes).tobytes() == AUDIOOP.alaw2lin(codes, 2)


def test_out_of_range_sample_is_rejected() -> None:
    with pytest.raises(ValueError, match="sample 1"):
        ulaw_encode([0, 40000])


# --- tone ----------------------------------------------------------------------------------


def test_tone_power_of_a_sine_is_half_the_amplitude_squared() -> None:
    tone = reference_tone(0.1, freq=1000.0, level_dbov=-6.0)
    amplitude = PCM16_MAX * 10 ** (-6 / 20)
    assert tone_power(tone, RATE, 1000.0) == pytest.approx(amplitude**2 / 2, rel=0.001)
    assert tone_power(tone, RATE, 2000.0) < amplitude**2 / 2 * 1e-6


@pytest.mark.parametrize("freq", [1000.0, REFERENCE_TONE_HZ])
def test_tone_is_found(freq: float) -> None:
    result = detect_tone(reference_tone(0.1, freq=freq), RATE, freq)
    assert result.found
    assert result.tone_dbov == pytest.approx(-10.0, abs=0.1)
    assert result.snr_db > 40


@pytest.mark.parametrize(
    ("encode", "decode"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)]
)
def test_tone_survives_a_g711_round_trip(encode: object, decode: object) -> None:
    assert callable(encode) and callable(decode)
    samples = decode(encode(reference_tone(0.1)))
    result = detect_tone(samples, RATE, REFERENCE_TONE_HZ)
    assert result.found and result.snr_db > 30


def test_silence_is_not_a_tone() -> None:
    result = detect_tone([0] * 800, RATE, REFERENCE_TONE_HZ)
    assert not result.found
    assert result.tone_power == 0.0


@pytest.mark.parametrize("sigma", [100.0, 3000.0, 10000.0])
def test_white_noise_is_not_a_tone(sigma: float) -> None:
    rng = random.Random(42)
    noise = [max(-32768, min(32767, round(rng.gauss(0, sigma)))) for _ in range(800)]
    result = detect_tone(noise, RATE, REFERENCE_TONE_HZ)
    assert not result.found
    assert result.snr_db < 0


def test_another_frequency_is_not_the_tone() -> None:
    for other in (400.0, 1400.0, 2000.0):
        assert not detect_tone(reference_tone(0.1, freq=other), RATE, REFERENCE_TONE_HZ).found


def test_a_faint_tone_is_not_audio() -> None:
    """Clean but below MIN_TONE_DBOV: a near-silent channel does not pass the audio check."""
    faint = reference_tone(0.1, level_dbov=MIN_TONE_DBOV - 10)
    result = detect_tone(faint, RATE, REFERENCE_TONE_HZ)
    assert result.snr_db > 10
    assert not result.found


def test_tone_in_noise_is_found_when_it_stands_out() -> None:
    rng = random.Random(3)
    tone = reference_tone(0.1)
    sigma = 1000.0
    noisy = [max(-32768, min(32767, s + round(rng.gauss(0, sigma)))) for s in tone]
    result = detect_tone(noisy, RATE, REFERENCE_TONE_HZ)
    assert result.found
    # Tone power A**2/2 over noise power sigma**2 (-10 dBov: A = 32767 * 10**-0.5).
    expected_snr = 10 * math.log10((PCM16_MAX * 10**-0.5) ** 2 / 2 / sigma**2)
    assert result.snr_db == pytest.approx(expected_snr, abs=1.0)


def test_coverage_measures_where_the_tone_is() -> None:
    audio = array("h", reference_tone(1.0)) + array("h", [0] * RATE)
    assert tone_coverage(audio, RATE) == pytest.approx(0.5)
    assert tone_coverage([], RATE) == 0.0


@pytest.mark.parametrize("freq", [0.0, 4000.0, 5000.0])
def test_frequency_must_be_below_nyquist(freq: float) -> None:
    with pytest.raises(ValueError, match="Nyquist"):
        tone_power([0, 1, 2], RATE, freq)
