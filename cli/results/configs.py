"""Seeds that ran different configurations never share a row: the finished runs of one row
(a dataset's base and new sides; a DG group's datasets) are split by their config fingerprint
(``engine/identity.py``), each configuration labelled by the keys whose values differ.

A side (or DG dataset) holding one fingerprint is one row, as before. Otherwise base and new runs
pair up by their identity less :data:`PAIRED_KEYS` (the keys that differ between the runs of one
row by construction), so a configuration's base row meets its own new row. Runs without a
fingerprint (written before results.json recorded one) are one configuration, ``unknown``.
"""
import json
from dataclasses import dataclass, field

from ...engine.identity import fingerprint, format_diff, identity_diff

UNKNOWN = "unknown"
PAIRED_KEYS = ("DATASET.NAME", "DATASET.SUBSAMPLE_CLASSES")  # base vs new; DG source vs target
LABEL_KEYS = 3  # keys named in a row's label (the note names them all)


@dataclass
class Config:
    """One configuration of a row: its pairing key, identity (less :data:`PAIRED_KEYS`; None
    when unrecorded) and finished runs per column."""
    key: str
    identity: dict = None
    runs: dict = field(default_factory=dict)

    @property
    def fingerprint(self):
        """The recorded fingerprint of its first run (base before new)."""
        return next((r.fingerprint for rs in self.runs.values() for r in rs), None)

    @property
    def seeds(self):
        return sorted({r.seed for rs in self.runs.values() for r in rs})

    def seeds_label(self):
        s = self.seeds
        return f"seed{'s' if len(s) > 1 else ''} {' '.join(map(str, s))}"


def _pairing(run):
    if run.fingerprint is None:
        return UNKNOWN, None
    if run.identity is None:
        return run.fingerprint, None
    ident = {k: v for k, v in run.identity.items() if k not in PAIRED_KEYS}
    return fingerprint(ident), ident


def split_configs(columns):
    """``columns``: ``{column: [finished runs]}``. ``[]`` when every column holds at most one
    fingerprint; else the :class:`Config` list, ordered by first seed."""
    if all(len({r.fingerprint or UNKNOWN for r in rs}) <= 1 for rs in columns.values()):
        return []
    configs = {}
    for col, runs in columns.items():
        for r in runs:
            key, ident = _pairing(r)
            c = configs.setdefault(key, Config(key, ident))
            c.runs.setdefault(col, []).append(r)
    return sorted(configs.values(), key=lambda c: (c.seeds[:1], c.key))


def _show(v):
    return v if isinstance(v, str) else json.dumps(v)


def labels(configs):
    """A short label per configuration: its values of the keys that differ (at most
    :data:`LABEL_KEYS`), ``no fingerprint`` or ``fingerprint <hex>``."""
    known = [c for c in configs if c.identity is not None]
    keys = sorted({k for c in known[1:]
                   for k, _, _ in identity_diff(known[0].identity, c.identity, include_absent=True)})
    out = []
    for c in configs:
        if c.key == UNKNOWN:
            out.append("no fingerprint")
        elif c.identity is None or not keys:
            out.append(f"fingerprint {c.fingerprint}")
        else:
            shown = [f"{k}={_show(c.identity.get(k, '<absent>'))}" for k in keys[:LABEL_KEYS]]
            out.append(", ".join(shown) + (", ..." if len(keys) > LABEL_KEYS else ""))
    return out


def describe(configs):
    """One line: how many configurations, and each against the first (``format_diff``)."""
    first, parts = configs[0], []
    for c in configs[1:]:
        if UNKNOWN in (first.key, c.key):
            old = next(x for x in (first, c) if x.key == UNKNOWN)
            parts.append(f"{old.seeds_label()} recorded no fingerprint (written before runs recorded one)")
        elif first.identity is None or c.identity is None:
            parts.append(f"fingerprint {first.fingerprint} ({first.seeds_label()}) vs {c.fingerprint} "
                         f"({c.seeds_label()})")
        else:
            diff = identity_diff(first.identity, c.identity, include_absent=True)
            parts.append(format_diff(diff, first.seeds_label(),
                                     c.seeds_label()))
    return f"{len(configs)} configurations (one row each): " + " | ".join(parts)
