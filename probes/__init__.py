"""Measurement side of trunkwatch: sans-I/O SIP, media statistics and the probes."""
