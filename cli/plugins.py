"""Extensions without editing the project: ``CPT_PLUGINS``.

``CPT_PLUGINS`` (or ``--plugin``) is a comma-separated list of modules, each a dotted name
(``mylab.methods``, found on ``sys.path``) or a path to a ``.py`` file, imported once before
anything is looked up by ``train.py``, the sweep, the bash driver and the parser. What a plugin
registers: docs/design.md section 11.
"""
import importlib
import importlib.util
import os
import sys

ENV = "CPT_PLUGINS"
_loaded = {}


class PluginError(ImportError):
    pass


def _import(name):
    if name.endswith(".py") or os.sep in name:
        path = os.path.abspath(name)
        if not os.path.isfile(path):
            raise PluginError(f"{ENV}: plugin file {path} does not exist")
        mod_name = "cpt_plugin_" + os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        raise PluginError(f"{ENV}: plugin module '{name}' not found ({e})") from e


def load_plugins(extra=()):
    """Import every plugin named in ``CPT_PLUGINS`` and ``extra`` (each once); returns the modules."""
    names = [n.strip() for n in os.environ.get(ENV, "").split(",") if n.strip()]
    names += [n for n in extra if n and n not in names]
    for name in names:
        if name not in _loaded:
            _loaded[name] = _import(name)
    return [_loaded[name] for name in names]
