"""Pure cluster core: the per-module state machine and every decision. No I/O."""
