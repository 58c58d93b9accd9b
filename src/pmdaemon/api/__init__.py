"""The HTTP adapter over the Supervisor, shared by the Unix control socket and (later) TCP."""
