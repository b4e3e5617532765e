"""Kuzet: city CCTV to dispatcher-ready incidents. The top of the import graph: the command line."""

__version__ = "0.1.0"
