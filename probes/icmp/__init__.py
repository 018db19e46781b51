"""ICMP echo (ping) over unprivileged datagram sockets: pure messages, then the probe."""
