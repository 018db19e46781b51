"""Everything /metrics shows: the exposition grammar and histogram (`exposition`), the
exporter that writes the probe loop's figures (`exporter`), the HTTP server (`server`),
per-trunk probe statistics (`stats`), and the test-call (`calls`), SLA (`sla`) and ticket
(`tickets`) sections it appends."""
