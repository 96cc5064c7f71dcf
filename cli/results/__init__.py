"""The stages of ``scripts/parse_results.py``, one module each (its own docstring says what it does),
passing :class:`runs.Run` records: runs -> summary -> paper -> formats."""
