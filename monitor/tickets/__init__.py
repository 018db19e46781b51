"""Automatic tickets: a durable outbox in the store and one module per ticket sink.

Flow (DESIGN §4): the journal batch with an outage's confirmation and its ticket request
are written in one transaction (``monitor.tickets.ledger``); ``outbox.OutboxWorker``
delivers each request to its sink (``webhook``, ``email``, ``rt``, ``pagerduty``,
``servicenow``, ``jira``, ``zammad``) with backoff until it succeeds; ``service`` wires
it for the app. Nothing here is imported eagerly, so the store can import the routing
without pulling in aiohttp.
"""
