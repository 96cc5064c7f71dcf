"""Merge yaml files and trailing ``KEY VALUE`` options into the config, with errors that say where.

yacs' own errors become ``ConfigError`` (a ``ValueError``) naming the file or the command line, the
key, what was expected and the closest existing key. Values as README *Config values* says (a string
for a list key is that list, ``tcpt,mbls`` two items; an int where a float is expected is that float;
``true``/``false`` are bools); also, a string-valued key takes the text as given (``CALIB.NAME 1``)
and list and tuple are interchangeable; anything else must have the default's type.
"""
import difflib
import os
import sys

from yacs.config import CfgNode

from .config import DASSL_IGNORED, SUBSAMPLE_CHOICES

FINAL_MODEL_CHOICES = ("last_step", "best_val")


class ConfigError(ValueError):
    """A config key or value that does not fit the defaults; the message names its source."""


def _flatten(d, prefix=""):
    """``(dotted key, value)`` of every value (not section) of a nested dict or config."""
    for k, v in d.items():
        full = f"{prefix}{k}"
        if isinstance(v, dict):
            yield from _flatten(v, full + ".")
        else:
            yield full, v


def closest_key(cfg, key):
    """The existing dotted key most like ``key`` (case-insensitive), or None."""
    lower = {k.lower(): k for k, _ in _flatten(cfg)}
    hit = difflib.get_close_matches(key.lower(), list(lower), n=1, cutoff=0.6)
    if not hit:  # a right leaf name under the wrong section, e.g. OPTIM.BATCH_SIZE
        tail = key.rsplit(".", 1)[-1].lower()
        hit = [k for k in lower if k.rsplit(".", 1)[-1] == tail][:1]
    return lower[hit[0]] if hit else None


def _unknown(cfg, key, source):
    close = closest_key(cfg, key)
    hint = f"; did you mean {close}?" if close else ""
    return ConfigError(f"{source}: unknown config key {key}{hint}")


def _kind(v):
    if isinstance(v, bool):
        return "a bool (True/False)"
    if isinstance(v, (list, tuple)):
        return "a list"
    return {int: "an int", float: "a float", str: "a string"}.get(type(v), type(v).__name__)


def _decode(value):
    """yacs' reading of a string value: a Python literal when it parses, else the string itself."""
    if not isinstance(value, str):
        return value
    from ast import literal_eval

    try:
        return literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def coerce(value, default, key, source):
    """``value`` made to fit ``default``'s type by the rules of the module docstring."""
    raw = value
    value = _decode(value)
    if isinstance(default, CfgNode):
        raise ConfigError(f"{source}: {key} is a section (keys {', '.join(sorted(default)[:4])}, ...), "
                          f"not a value; got {raw!r}")
    if isinstance(default, (list, tuple)) and isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(default, bool) and isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    if isinstance(default, str) and isinstance(raw, str):
        return raw
    if value is None or default is None or type(value) is type(default):
        return value
    if isinstance(default, float) and type(value) is int:
        return float(value)
    if isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)):
        return type(default)(value)
    raise ConfigError(f"{source}: {key} expects {_kind(default)} (current value {default!r}), got {raw!r}")


def _set(cfg, key, value, source):
    node = cfg
    parts = key.split(".")
    for p in parts[:-1]:
        if not isinstance(node, CfgNode) or p not in node:
            raise _unknown(cfg, key, source)
        node = node[p]
    if not isinstance(node, CfgNode) or parts[-1] not in node:
        if isinstance(node, CfgNode) and node.is_new_allowed():
            node[parts[-1]] = _decode(value)
            return
        raise _unknown(cfg, key, source)
    node[parts[-1]] = coerce(value, node[parts[-1]], key, source)
    if key in DASSL_IGNORED and node[parts[-1]] != DASSL_IGNORED[key]:
        print(f"warning: {source}: {key} is a Dassl key that this project accepts and ignores", file=sys.stderr)


def merge_file(cfg, path, what):
    """Merge the yaml file ``path`` (``what``: the flag that named it) into ``cfg``."""
    import yaml

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            blob = yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{what} {path} is not valid YAML{where}: {problem}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{what} {path} is not a text file ({e.reason})") from None
    if blob is not None and not isinstance(blob, dict):
        raise ConfigError(f"{what} {path}: expected a mapping of config keys (e.g. 'OPTIM:' / '  LR: 0.002'), "
                          f"got {type(blob).__name__}")
    for key, value in _flatten(blob or {}):
        _set(cfg, key, value, f"{what} {path}")


def _not_utf8(text):
    """``text`` with backslash escapes when it holds bytes that are not UTF-8 (Python reads them from
    the command line as surrogate escapes, '\\udcff' for 0xff), else None."""
    if not isinstance(text, str):
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", "backslashreplace")
    return None


def merge_opts(cfg, opts, flags=()):
    """Merge trailing ``KEY VALUE`` pairs; ``flags``: the command's option strings (for hints)."""
    opts = list(opts or [])
    for i in range(0, len(opts), 2):
        key = opts[i]
        value = opts[i + 1] if i + 1 < len(opts) else ""
        for what, text in (("key", key), (f"{key} value", value)):
            shown = _not_utf8(text)
            if shown is not None:
                raise ConfigError(f"command line: {what} '{shown}' is not valid UTF-8 text")
        if key.startswith("-"):
            close = difflib.get_close_matches(key.split("=", 1)[0], list(flags), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(f"unknown option {key} (options after the first KEY VALUE pair must be config "
                              f"KEY VALUE pairs too){hint}")
        if i + 1 == len(opts):
            raise ConfigError(f"command line: trailing options must be KEY VALUE pairs; {key} has no value")
        _set(cfg, key, opts[i + 1], "command line")


def check_values(cfg):
    """Values with a fixed set of choices or range; run before anything is built or written."""
    checks = [("DATASET.SUBSAMPLE_CLASSES", cfg.DATASET.SUBSAMPLE_CLASSES, SUBSAMPLE_CHOICES),
              ("TEST.FINAL_MODEL", cfg.TEST.FINAL_MODEL, FINAL_MODEL_CHOICES)]
    for key, value, choices in checks:
        if value not in choices:
            close = difflib.get_close_matches(str(value).lower(), choices, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {value!r}{hint}")
    for key in ("DATALOADER.TRAIN_X.BATCH_SIZE", "DATALOADER.TEST.BATCH_SIZE"):
        node = cfg
        for part in key.split("."):
            node = node[part]
        if isinstance(node, bool) or not isinstance(node, int) or node < 1:
            raise ConfigError(f"{key} must be an int >= 1 (images per batch), got {node!r}")
    if cfg.OPTIM.MAX_EPOCH < 0:
        raise ConfigError(f"OPTIM.MAX_EPOCH must be >= 0, got {cfg.OPTIM.MAX_EPOCH}")
    if str(cfg.CALIB.POSTHOC).lower() == "dac":
        if cfg.CALIB.DAC.K < 1:
            raise ConfigError(f"CALIB.DAC.K must be an int >= 1 (neighbours per class), got {cfg.CALIB.DAC.K}")
        if cfg.CALIB.DAC.BASE_THRESHOLD < 0:
            raise ConfigError(f"CALIB.DAC.BASE_THRESHOLD must be >= 0, got {cfg.CALIB.DAC.BASE_THRESHOLD}")
