"""The stages of ``scripts/parse_results.py``, one module each, passing :class:`runs.Run` records:

``runs`` (discovery and reading of run directories) -> ``summary`` (per-dataset means, stds, HM
and the average row; the domain-generalisation table) -> ``paper`` (the published numbers) ->
``formats`` (md / csv / latex, long and wide layouts, the problem list, plot rows).
"""
