"""The parser behind ``scripts/parse_results.py`` (``parse.py``, the program) and its stages, one module
each (its own docstring says what it does), passing :class:`runs.Run` records: runs -> summary -> paper -> formats."""
