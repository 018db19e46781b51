"""Media measurement, pure (no I/O, no pjsua2): RTP statistics (`rtp`), sliding windows
(`windows`), the G.107 E-model (`emodel`), G.711 and tone detection (`tone`), threshold
profiles (`thresholds`) and RFC 6076 session metrics (`rfc6076`)."""
