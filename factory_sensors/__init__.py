"""factory_sensors."""
