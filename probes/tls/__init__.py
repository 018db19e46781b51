"""TLS certificate inspection: the pure inspector (`cert`) and the handshake that feeds it
(`fetch`)."""
