"""Shared types at the bottom of the import graph: frames, detections, labels, config, logging, clocks.

Every other package may import from here; this package imports from none of them.
"""
