"""Text <-> bitemporal image retrieval (text-ITSR): features, model + checkpoint, evaluation, search.

Import submodules directly (``rsir.itsr.pipeline``); this package stays import-light for the CLI.
"""
