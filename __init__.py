"""The checkout root is the package ``cpt`` at run time: ``cpt/__init__.py`` puts this folder on the
package path, so ``engine/``, ``trainers/``, ... are ``cpt.engine``, ``cpt.trainers``, ... This file says
so to every static reader (editors, linters, import graphs), which then resolve the relative imports
between the layer folders (docs/design.md section 1); it is never imported."""
