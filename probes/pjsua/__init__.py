"""pjsua2 test calls in supervised worker processes (see notes/pjsua2.md for why)."""
