"""Text <-> scene retrieval on single-date caption datasets (the text-ITSR machinery with one date).

Import submodules directly (``rsir.text.pipeline``); this package stays import-light for the CLI.
"""
