"""Pipelines: GridLAB-D job definitions (native `gridlabd` or OpenFIDO `script`)."""
