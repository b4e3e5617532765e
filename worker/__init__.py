"""Composition: runs the cameras this worker owns through detection, tracking and rules, into the outbox.

The only package that imports ingest, detectors, event_bus and storage together.
"""
