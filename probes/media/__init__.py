"""Media measurement, pure (no I/O, no pjsua2). How the pieces fit for a test call:

- `rtp`: RFC 3550 receive statistics. Whoever sees raw RTP (the test relay) calls
  `RtpReceiverStats().receive(seq, ts, arrival_ns)` per packet and keeps the `PacketRecord`s.
  A pjsua2 worker instead samples `Call.getStreamStat()` at >= 5 Hz into `rtp.Snapshot`s
  (see the field mapping in its docstring).
- `windows`: `measure_packets(records, profile.windows)` or
  `measure_snapshots(snapshots, profile.windows)` -> `MediaQuality` (worst 15 s loss, worst
  200 ms burst loss, worst 15 s mean jitter, reorder ratio).
- `thresholds`: `evaluate(profile, Measurements.from_quality(q, one_way_latency_s=..., rtt_s=...))`
  -> `list[Violation]` against `BUILTIN_PROFILES` or a user `ThresholdProfile`.
- `emodel`: `g711(one_way_delay_s, loss_ratio, burst_r=...)` -> `EModelResult` (`.r`, `.mos`).
- `tone`: `reference_tone()` to play, `detect_tone()` / `tone_coverage()` on what came back,
  `ulaw_*` / `alaw_*` to get linear samples from PCMU/PCMA payloads.
- `rfc6076`: `SessionMetricsWindow().add(CallAttempt(...))`, then `.metrics(now_ns)`.
"""
