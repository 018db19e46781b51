"""Everything /metrics shows: the exporter and its text writer (`exporter`), the HTTP server
(`server`), per-trunk probe statistics (`stats`), test-call (`calls`), SLA (`sla`) and
ticket (`tickets`) metrics."""
