"""SIP server location (RFC 3263): the pure planner (`rfc3263`) and the dnspython driver
(`resolver`) that feeds it real DNS answers."""
