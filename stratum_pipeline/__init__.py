"""Stratum Pipeline: the ML engine of the Stratum advertising-analytics platform, as a Dagster project."""
