"""Runs in flight: the engine's decisions executed against the store, the
dispatcher and the run's event log."""
