"""Synthetic Stratum source data with ground truth (the embedded demo and the test fixtures)."""
