"""Seeded synthetic data sources, one module each: plain numpy/PIL, no Lightning.

They let every application run and visibly learn offline. They are not real data, and each
datamodule's audit says so.
"""
