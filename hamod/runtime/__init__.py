"""Runtime: the daemon wiring events, core decisions and adapters."""
