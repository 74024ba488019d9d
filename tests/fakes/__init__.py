"""Protocol-faithful fakes of the paid providers, served by pytest-httpserver."""
