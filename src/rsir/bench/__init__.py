"""Measurement functions behind `rsir bench`: throughput, ANN search, ANNEAL selection, memory."""
