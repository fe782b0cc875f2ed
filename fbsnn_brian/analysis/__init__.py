"""Measures, plots and reports on the exported xarray data (never live Brian2 objects)."""
