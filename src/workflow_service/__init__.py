"""Workflow Service: runs GridLAB-D simulations for other applications and keeps their results."""

__version__ = "0.1.0"
