"""factory_core."""
