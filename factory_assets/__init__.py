"""factory_assets."""
