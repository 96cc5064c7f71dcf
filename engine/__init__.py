"""The Dassl-compatible engine (docs/design.md section 2); it knows no method and no benchmark."""
if not __name__.startswith("cpt."):  # one name per module: this folder is the package cpt.<folder>
    raise ImportError(f"import cpt.{__name__} (python -m cpt.{__name__}.<module>), not {__name__}", name=__name__)
