"""Audio-path check: G.711 codecs, a reference tone, and a Goertzel tone detector.

The call probe plays `reference_tone()` into the call and looks for it in the audio that comes
back (echo responder) or arrives (reference-playing responder): found means the audio path
works in that direction; silence or noise means `one_way_audio` / `no_audio`.

G.711 here is pure Python (`audioop` is gone in Python 3.13), a transcription of the classic
Sun reference implementation that CPython's audioop also used: mu-law works on 14-bit and
A-law on 13-bit linear magnitudes, as ITU-T G.711 defines them.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

# Test tone: 1004 Hz, the ITU-T O.41/O.132 reference frequency. Why not 1000 Hz: a submultiple
# of the 8 kHz sampling rate repeats the same 8 sample values, so a codec or PLC fault that
# hits other code words would go unseen.
REFERENCE_TONE_HZ = 1004.0
# -10 dBov: loud enough to stand far above G.711 quantizing noise, with headroom so no gain
# stage on the path clips it.
REFERENCE_TONE_DBOV = -10.0

# Detection: the tone must stand this far above everything else in the block. Measured with
# these functions on 100 ms blocks: the reference tone after a G.711 round trip has 46 dB
# (mu-law) / 42 dB (A-law); Gaussian white noise -25 dB; another tone (1400 Hz) -41 dB.
DEFAULT_SNR_THRESHOLD_DB = 10.0
# ... and be at least this loud, so a near-silent channel (dither, comfort noise) with a faint
# tone-like component does not count as audio.
MIN_TONE_DBOV = -45.0
# Reported SNR ceiling and level floor: a pure tone has no residual and silence no level; finite
# bounds keep the figures usable in JSON, logs and metrics.
MAX_SNR_DB = 120.0
MIN_REPORTED_DBOV = -120.0
# Detection block for tone_coverage: 100 ms = 800 samples at 8 kHz, a bin 10 Hz wide, and short
# enough to see a one-way gap of a few hundred ms.
DEFAULT_BLOCK_S = 0.1

# Full scale of 16-bit linear PCM, and the power of a full-scale sine (0 dBov reference).
PCM16_MAX = 32767
FULL_SCALE_SINE_POWER = PCM16_MAX**2 / 2


# --- G.711 (Sun reference implementation, as in CPython's audioop) -------------------------

_SEG_UEND = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_SEG_AEND = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)
_ULAW_BIAS = 0x84  # mu-law bias for 16-bit samples (0x21 on the 14-bit scale)
_ULAW_CLIP_14 = 8159  # largest 14-bit magnitude mu-law represents
_QUANT_MASK = 0x0F
_SEG_SHIFT = 4
_SEG_MASK = 0x70
_SIGN_BIT = 0x80


def _segment(value: int, table: tuple[int, ...]) -> int:
    for i, end in enumerate(table):
        if value <= end:
            return i
    return len(table)


def _linear14_to_ulaw(pcm_val: int) -> int:
    if pcm_val < 0:
        pcm_val = -pcm_val
        mask = 0x7F
    else:
        mask = 0xFF
    pcm_val = min(pcm_val, _ULAW_CLIP_14) + (_ULAW_BIAS >> 2)
    seg = _segment(pcm_val, _SEG_UEND)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((pcm_val >> (seg + 1)) & 0x0F)) ^ mask


def _ulaw_to_linear16(u_val: int) -> int:
    u_val = ~u_val & 0xFF
    t = ((u_val & _QUANT_MASK) << 3) + _ULAW_BIAS
    t <<= (u_val & _SEG_MASK) >> _SEG_SHIFT
    return _ULAW_BIAS - t if u_val & _SIGN_BIT else t - _ULAW_BIAS


def _linear13_to_alaw(pcm_val: int) -> int:
    if pcm_val >= 0:
        mask = 0xD5  # sign (7th) bit = 1
    else:
        mask = 0x55  # sign bit = 0
        pcm_val = -pcm_val - 1
    seg = _segment(pcm_val, _SEG_AEND)
    if seg >= 8:
        return 0x7F ^ mask
    aval = seg << _SEG_SHIFT
    aval |= (pcm_val >> (1 if seg < 2 else seg)) & _QUANT_MASK
    return aval ^ mask


def _alaw_to_linear16(a_val: int) -> int:
    a_val ^= 0x55
    t = (a_val & _QUANT_MASK) << 4
    seg = (a_val & _SEG_MASK) >> _SEG_SHIFT
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a_val & _SIGN_BIT else -t


# Tables: decode by byte value; encode by the 14-bit (mu) / 13-bit (A) sample, offset to >= 0.
_ULAW_DECODE = array("h", (_ulaw_to_linear16(b) for b in range(256)))
_ALAW_DECODE = array("h", (_alaw_to_linear16(b) for b in range(256)))
_ULAW_ENCODE = bytes(_linear14_to_ulaw(v) for v in range(-(1 << 13), 1 << 13))
_ALAW_ENCODE = bytes(_linear13_to_alaw(v) for v in range(-(1 << 12), 1 << 12))


def _check_pcm16(samples: Sequence[int]) -> None:
    for i, s in enumerate(samples):
        if not -32768 <= s <= 32767:
            raise ValueError(f"sample {i} = {s} is outside 16-bit PCM")


def ulaw_encode(samples: Sequence[int]) -> bytes:
    """16-bit linear PCM to G.711 mu-law (PCMU) bytes."""
    _check_pcm16(samples)
    table = _ULAW_ENCODE
    return bytes(table[(s >> 2) + (1 << 13)] for s in samples)


def ulaw_decode(data: bytes) -> array[int]:
    """G.711 mu-law (PCMU) bytes to 16-bit linear PCM."""
    table = _ULAW_DECODE
    return array("h", (table[b] for b in data))


def alaw_encode(samples: Sequence[int]) -> bytes:
    """16-bit linear PCM to G.711 A-law (PCMA) bytes."""
    _check_pcm16(samples)
    table = _ALAW_ENCODE
    return bytes(table[(s >> 3) + (1 << 12)] for s in samples)


def alaw_decode(data: bytes) -> array[int]:
    """G.711 A-law (PCMA) bytes to 16-bit linear PCM."""
    table = _ALAW_DECODE
    return array("h", (table[b] for b in data))


# --- reference tone ------------------------------------------------------------------------


def reference_tone(
    duration_s: float,
    *,
    sample_rate: int = 8000,
    freq: float = REFERENCE_TONE_HZ,
    level_dbov: float = REFERENCE_TONE_DBOV,
    phase: float = 0.0,
) -> array[int]:
    """A sine of `level_dbov` (0 dBov = full-scale sine) as 16-bit linear PCM samples."""
    if duration_s < 0 or sample_rate <= 0:
        raise ValueError("duration must be >= 0 and sample_rate > 0")
    if not 0 < freq < sample_rate / 2:
        raise ValueError(f"tone {freq} Hz is not below the Nyquist frequency {sample_rate / 2} Hz")
    if level_dbov > 0:
        raise ValueError(f"level {level_dbov} dBov would clip")
    amplitude = PCM16_MAX * 10 ** (level_dbov / 20)
    step = 2 * math.pi * freq / sample_rate
    n = round(duration_s * sample_rate)
    return array("h", (round(amplitude * math.sin(phase + step * i)) for i in range(n)))


# --- Goertzel ------------------------------------------------------------------------------


def _check_args(sample_rate: int, freq: float) -> None:
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if not 0 < freq < sample_rate / 2:
        raise ValueError(
            f"{freq} Hz is not between 0 and the Nyquist frequency {sample_rate / 2} Hz"
        )


def tone_power(samples: Sequence[int], sample_rate: int, freq: float) -> float:
    """Power of the `freq` component (Goertzel), in sample units squared: A**2 / 2 for a sine of
    amplitude A. The generalized Goertzel evaluates exactly at `freq`, not at the nearest bin."""
    _check_args(sample_rate, freq)
    n = len(samples)
    if n == 0:
        return 0.0
    coeff = 2 * math.cos(2 * math.pi * freq / sample_rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    magnitude_sq = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return max(0.0, 2 * magnitude_sq / (n * n))


def signal_power(samples: Sequence[int]) -> float:
    """Mean power of the block, in sample units squared."""
    n = len(samples)
    return sum(x * x for x in samples) / n if n else 0.0


@dataclass(slots=True, frozen=True)
class ToneResult:
    found: bool
    snr_db: float  # tone power over the power of everything else, capped at MAX_SNR_DB
    tone_dbov: float  # tone level relative to a full-scale sine, floored at MIN_REPORTED_DBOV
    tone_power: float
    total_power: float


def _db(ratio: float, floor: float) -> float:
    return max(floor, 10 * math.log10(ratio)) if ratio > 0 else floor


def detect_tone(
    samples: Sequence[int],
    sample_rate: int,
    freq: float,
    *,
    threshold_db: float = DEFAULT_SNR_THRESHOLD_DB,
    min_dbov: float = MIN_TONE_DBOV,
) -> ToneResult:
    """Is a tone at `freq` present: SNR >= threshold_db and level >= min_dbov."""
    tone = tone_power(samples, sample_rate, freq)
    total = signal_power(samples)
    rest = total - tone
    if tone <= 0:
        snr = -MAX_SNR_DB
    elif rest <= tone * 10 ** (-MAX_SNR_DB / 10):
        snr = MAX_SNR_DB
    else:
        snr = _db(tone / rest, -MAX_SNR_DB)
    level = _db(tone / FULL_SCALE_SINE_POWER, MIN_REPORTED_DBOV)
    return ToneResult(
        found=snr >= threshold_db and level >= min_dbov,
        snr_db=snr,
        tone_dbov=level,
        tone_power=tone,
        total_power=total,
    )


def tone_coverage(
    samples: Sequence[int],
    sample_rate: int,
    freq: float = REFERENCE_TONE_HZ,
    *,
    block_s: float = DEFAULT_BLOCK_S,
    threshold_db: float = DEFAULT_SNR_THRESHOLD_DB,
    min_dbov: float = MIN_TONE_DBOV,
) -> float:
    """Fraction (0..1) of whole `block_s` blocks in which the tone is found; 0 for no blocks."""
    size = round(block_s * sample_rate)
    if size <= 0:
        raise ValueError(f"block of {block_s} s holds no samples at {sample_rate} Hz")
    blocks = len(samples) // size
    if blocks == 0:
        return 0.0
    found = sum(
        detect_tone(
            samples[k * size : (k + 1) * size],
            sample_rate,
            freq,
            threshold_db=threshold_db,
            min_dbov=min_dbov,
        ).found
        for k in range(blocks)
    )
    return found / blocks
