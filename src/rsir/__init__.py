"""rsir: remote-sensing image retrieval (CBIR + DML, ANNEAL active learning, text-ITSR)."""

__version__ = "0.1.0"
