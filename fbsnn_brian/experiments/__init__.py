"""Compositions of the layers below: checks, rule comparison, sweeps, run files and runs."""
