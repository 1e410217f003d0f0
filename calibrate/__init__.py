"""Calibration: torch microbenchmarks into measured tables, fits of measured iterations into profiles.

torch is imported lazily (only the harness and the CPU real run need it).
"""
