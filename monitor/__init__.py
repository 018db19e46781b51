"""Conclusion side of trunkwatch: config, scheduler, health, outages, store, exporter, CLI."""

__version__ = "0.1.0"
