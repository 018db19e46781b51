"""The contract's SLA: availability arithmetic (`availability`), contracts, intervals,
maintenance, the ledger (exclusions, manual outages, corrections: `ledger`), the one view
every front end reads (`service.SlaContext`), the one command layer CLI and API both call
(`commands`), reports and evidence. `monitor.sla` re-exports the arithmetic."""

from monitor.sla.availability import *  # noqa: F403
from monitor.sla.availability import __all__ as __all__
