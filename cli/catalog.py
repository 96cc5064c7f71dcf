"""The method and dataset catalog, the run-directory layout and the "finished" rule, written once.

The bash drivers (``scripts/<method>/*.sh`` through ``scripts/drive.py``), ``scripts/sweep.py``
and ``scripts/parse_results.py`` all read this module; importing it imports nothing heavy (no torch;
looking a method up imports the trainers), and ``python -m cpt.cli.catalog`` prints the method
table. The table is data the trainer classes declare (``catalog_entry``, docs/design.md section 11),
a plugin's (``cpt.cli.plugins``) as a built-in one's.

Layout (docs/design.md section 7): ``<output>/base2new/{train_base,test_new}/<dataset>/shots_<K>/
<trainer>/<cfgdir>/seed<S>`` (``dg/{train,test}`` for domain generalisation), ``<cfgdir>`` =
``<cfg>`` when the calibration is ``none``, else ``<cfg>_<calib>``. A run is finished when its
``results.json`` says ``"status": "finished"`` (:data:`FINISHED_ERE`, one pattern for ``grep -E``
and Python); anything else is re-run (train.py resumes from its last checkpoint). Before skipping
a finished run the drivers compare the config fingerprint it recorded with the one its command
would run now (:func:`compare_finished`) and refuse it when they differ. The parser reads runs
more leniently (``cli/results/runs.py``), so older runs still parse.
"""
import json
import os
import re
import sys
from dataclasses import dataclass
from shlex import quote

from ..calibration.registry import Registry


@dataclass(frozen=True)
class Method:
    """One entry of the method table: the ``catalog_entry`` a trainer class declares (its own, not
    inherited), with ``trainer`` its ``TRAINER_REGISTRY`` name.

    ``name``: short name (``scripts/<name>/``, ``sweep.py --methods``); ``config``: default config stem
    (``configs/trainers/<trainer>/``) for base-to-new; ``ml_config``: default of the multi-label
    scripts (None: not offered there); ``config_dirs``: more trainer folders searched for a config
    stem; ``eval_only``: nothing is trained (both steps are ``--eval-only``, the test step loads no
    model); ``multilabel``: a multi-label method (its scripts default to :data:`ML_DATASETS`);
    ``paper``: the ``prompt_method`` of the TCPT table (``scripts/paper_tables/``), None when not
    published; ``default``: the method the sweep and the multi-label scripts run when none is named.
    """
    name: str
    trainer: str
    config: str
    ml_config: str = None
    config_dirs: tuple = ()
    eval_only: bool = False
    multilabel: bool = False
    paper: str = None
    default: bool = False


def builtin_entries():
    """``{trainer: catalog_entry}`` of the built-in trainer classes, read from their modules' source
    (``trainers/<method>.py`` or ``trainers/<method>/__init__.py``; the registry name is the class
    name), so that looking a method up imports no trainer and no torch (the bash drivers)."""
    import ast
    import glob

    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "trainers")
    out = {}
    for path in sorted(glob.glob(os.path.join(root, "*.py")) + glob.glob(os.path.join(root, "*", "__init__.py"))):
        with open(path, encoding="utf-8") as f:
            classes = [n for n in ast.parse(f.read()).body if isinstance(n, ast.ClassDef)]
        out.update({c.name: ast.literal_eval(s.value) for c in classes for s in c.body if isinstance(s, ast.Assign)
                    and [getattr(t, "id", None) for t in s.targets] == ["catalog_entry"]})
    return {trainer: entry for trainer, entry in out.items() if entry}


class MethodTable(Registry):
    """The method table: the ``catalog_entry`` of the built-in trainer classes (:func:`builtin_entries`,
    read at the first lookup) and of the registered ones (plugins; read at every lookup). Two trainers
    declaring one short name fail, naming both."""

    builtins = None

    def sync(self):
        if self.builtins is None:
            self.builtins = builtin_entries()
        entries = dict(self.builtins)
        registry = sys.modules.get(__name__.rsplit(".", 2)[0] + ".engine.trainer")  # imported: plugins may be in it
        for trainer, cls in registry.TRAINER_REGISTRY.items() if registry else ():
            entries[trainer] = vars(cls).get("catalog_entry") or entries.get(trainer)
        for trainer, entry in entries.items():
            if entry:
                m = Method(trainer=trainer, **dict(entry, config_dirs=tuple(entry.get("config_dirs", ()))))
                known = self._obj_map.setdefault(self._key(m.name), m)
                if known != m:
                    raise CatalogError(f"method '{m.name}' is declared by {known.trainer} and {trainer}")

    def get(self, name):
        self.sync()
        return super().get(name)

    def items(self):
        self.sync()
        return super().items()

    def __contains__(self, name):
        self.sync()
        return super().__contains__(name)


METHODS = MethodTable("method", case_insensitive=True)


def get_method(name):
    """A :class:`Method` by short name or trainer name (case-insensitive); ``CatalogError`` otherwise."""
    if name in METHODS:
        return METHODS.get(name)
    for _, m in METHODS.items():
        if m.trainer.lower() == str(name).lower():
            return m
    raise CatalogError(f"unknown method '{name}'; known: {', '.join(m.name for _, m in METHODS.items())}")


def methods_of_trainer(trainer):
    return [m for _, m in METHODS.items() if m.trainer.lower() == str(trainer).lower()]


def default_method():
    """The short name of the method run when none is named (the entry marked ``default``)."""
    return next(m.name for _, m in METHODS.items() if m.default)


# The 11 base-to-new benchmarks in the papers' column order: (yaml stem, paper column, display name)
DATASETS = [
    ("imagenet", "INet", "ImageNet"), ("caltech101", "Cal", "Caltech101"), ("oxford_pets", "Pets", "OxfordPets"),
    ("stanford_cars", "Cars", "StanfordCars"), ("oxford_flowers", "Flow", "Flowers102"),
    ("food101", "Food", "Food101"), ("fgvc_aircraft", "Air", "FGVCAircraft"), ("sun397", "SUN", "SUN397"),
    ("dtd", "DTD", "DTD"), ("eurosat", "Euro", "EuroSAT"), ("ucf101", "UCF", "UCF101"),
]
BENCHMARKS = [stem for stem, _, _ in DATASETS]
# the multi-label benchmarks (default of scripts/multilabel/ and scripts/taidpt/) and the DG defaults
ML_DATASETS = ["coco2014", "voc2007", "nuswide", "coco_lt", "voc_lt"]
DG_SOURCE, DG_TARGETS = "coco2014", ["coco2017", "coco_lt"]

# layout -> {split directory: side}
LAYOUTS = {"base2new": {"train_base": "base", "test_new": "new"}, "dg": {"train": "source", "test": "target"}}
SEED_DIR = re.compile(r"seed(\d+)")
FINISHED_ERE = '"status"[[:space:]]*:[[:space:]]*"finished"'
FINISHED_RE = re.compile(FINISHED_ERE.replace("[[:space:]]", r"\s"))


def is_finished(path):
    """True when ``path/results.json`` says ``"status": "finished"``."""
    try:
        with open(os.path.join(path, "results.json"), encoding="utf-8") as f:
            return bool(FINISHED_RE.search(f.read()))
    except OSError:
        return False


def compare_finished(path, argv):
    """How the finished run at ``path`` compares with what ``train.py argv`` would run now (``argv``:
    a list, or a callable giving it; resolved only when the run recorded a fingerprint):
    ``("same", "")``; ``("other", diff)`` when the config fingerprint or the seed differs, ``diff``
    naming the keys with both values (``engine.identity.format_diff``); ``("unchecked", why)`` when
    the run recorded no fingerprint (written before runs did) or ``argv`` does not resolve."""
    try:
        with open(os.path.join(path, "results.json"), encoding="utf-8") as f:
            done = json.load(f)
        old_fp = done.get("fingerprint")
    except (OSError, ValueError, AttributeError):
        old_fp = None
    if not old_fp:
        return "unchecked", "an older run without a config fingerprint: options not compared"
    try:
        from . import identity_of_argv  # lazy: resolving a config imports the trainers

        identity, fp, seed = identity_of_argv(argv() if callable(argv) else argv)
    except (Exception, SystemExit) as e:
        return "unchecked", f"options not compared: the command does not resolve: {type(e).__name__}: {e}"
    from ..engine.identity import format_diff, identity_diff

    if fp == old_fp and str(seed) == str(done.get("seed")):
        return "same", ""
    old_id = done.get("identity") if isinstance(done.get("identity"), dict) else {}
    diff = identity_diff(old_id, identity) if old_id else []
    if str(seed) != str(done.get("seed")):
        diff.append(("SEED", done.get("seed"), seed))
    if not diff:  # only keys one side lacks (a code change added them): the same options
        return ("same", "") if old_id else ("other", f"fingerprint {old_fp} (finished) vs {fp} (now)")
    return "other", format_diff(diff, "finished", "now")


def refusal(path, diff):
    """The one-line error of a finished run at ``path`` whose options differ (``diff``) from the command's."""
    return (f"{path} holds a finished run with other options: {diff}; use another OUTPUT (or remove the folder) "
            "to run these options")


def finished_test_sh(path):
    """The same rule as a bash condition (for job scripts)."""
    return f"grep -Eq {quote(FINISHED_ERE)} {quote(os.path.join(path, 'results.json'))} 2>/dev/null"


# ----------------------------------------------------------------------------- config files
class CatalogError(ValueError):
    """A missing method, config, dataset or calibration preset (the message names the file)."""


def yaml_stems(directory):
    try:
        return sorted(f[:-5] for f in os.listdir(directory) if f.endswith(".yaml"))
    except OSError:
        return []


def _available(directory):
    return " ".join(yaml_stems(directory)) or "none"


def config_dirs(root, trainer):
    """Folders searched for a config stem of ``trainer``: its own, then its methods' ``config_dirs``."""
    extra = [d for m in methods_of_trainer(trainer) for d in m.config_dirs]
    return [os.path.join(root, "configs", "trainers", t) for t in [trainer] + extra]


def yaml_name(name):
    """A run directory's name for a dataset or config: the stem, also of a path (``/lab/toy.yaml`` -> ``toy``)."""
    return os.path.basename(name)[:-5] if name.endswith(".yaml") else name


def config_file(root, trainer, cfg):
    """(config name, absolute yaml path) for a ``.yaml`` path or a stem under :func:`config_dirs`."""
    if cfg.endswith(".yaml"):
        return yaml_name(cfg), _existing(os.path.abspath(cfg), f"method config '{cfg}'", "; CFG: a stem or a .yaml")
    dirs = config_dirs(root, trainer)
    for d in dirs:
        if os.path.isfile(os.path.join(d, cfg + ".yaml")):
            return cfg, os.path.join(d, cfg + ".yaml")
    raise CatalogError(f"method config '{cfg}' not found: expected {os.path.join(dirs[0], cfg + '.yaml')} "
                       f"(available: {_available(dirs[0])}); set CFG to a stem or a .yaml path")


def _existing(path, what, hint=""):
    if not os.path.isfile(path):
        available = _available(os.path.dirname(path))
        raise CatalogError(f"{what} not found: expected {path} (available: {available}){hint}")
    return path


def calib_file(root, calib):
    """Path of ``configs/calibration/<calib>.yaml``, "" for ``none``."""
    if calib == "none":
        return ""
    path = os.path.join(root, "configs", "calibration", calib + ".yaml")
    return _existing(path, f"calibration preset '{calib}'", "; use 'none' for no calibration")


def dataset_file(root, dataset):
    """A dataset config: a ``.yaml`` path anywhere (a plugin's dataset), else ``configs/datasets/<dataset>.yaml``."""
    path = (os.path.abspath(dataset) if dataset.endswith(".yaml")
            else os.path.join(root, "configs", "datasets", dataset + ".yaml"))
    return _existing(path, f"dataset config '{dataset}'", "; a dataset: a stem of configs/datasets/ or a .yaml path")


def load_epoch(cfg_file, opts=(), override=None):
    """Checkpoint epoch to test: ``override``, else the last ``OPTIM.MAX_EPOCH`` in ``opts``, else
    the first ``MAX_EPOCH: N`` line of the method config."""
    if override not in (None, ""):
        return str(override)
    opts = list(opts)
    found = [v for k, v in zip(opts, opts[1:]) if k == "OPTIM.MAX_EPOCH"]
    if found:
        return str(found[-1])
    with open(cfg_file, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^\s*MAX_EPOCH\s*:\s*([0-9]+)", line)
            if m:
                return m.group(1)
    raise CatalogError(f"no MAX_EPOCH in {cfg_file} (nor OPTIM.MAX_EPOCH in opts); set LOAD_EPOCH")


# ----------------------------------------------------------------------------- commands
@dataclass
class Setup:
    """A resolved (method, config, calibration, shots) and where/how its runs go: builds their
    directories and ``train.py`` argv (the one builder of the bash drivers and the sweep)."""
    root: str
    method: Method
    cfg: str
    cfg_file: str
    calib: str
    calib_file: str
    shots: int
    output: str
    data: str
    python: str = "python"
    opts: tuple = ()
    load_epoch: str = None

    @classmethod
    def resolve(cls, root, method, cfg=None, calib="none", multilabel=False, **kw):
        m = method if isinstance(method, Method) else get_method(method)
        default = m.ml_config if multilabel else m.config
        if not (cfg or default):
            raise CatalogError(f"method '{m.name}' has no multi-label default config; set CFG")
        name, path = config_file(root, m.trainer, cfg or default)
        return cls(root, m, name, path, calib, calib_file(root, calib), **kw)

    @property
    def cfgdir(self):
        return self.cfg if self.calib in (None, "", "none") else f"{self.cfg}_{self.calib}"

    def run_dir(self, layout, split, dataset, seed):
        return os.path.join(self.output, layout, split, yaml_name(dataset), f"shots_{self.shots}", self.method.trainer,
                            self.cfgdir, f"seed{seed}")

    def command(self, dataset, seed, out_dir, subsample, model_dir=None):
        """``train.py`` argv; with ``model_dir`` (or an eval-only method) an ``--eval-only`` run."""
        cmd = [self.python, os.path.join(self.root, "train.py"), "--root", self.data, "--seed", str(seed),
               "--trainer", self.method.trainer, "--dataset-config-file", dataset_file(self.root, dataset),
               "--config-file", self.cfg_file]
        cmd += ["--calib-config-file", self.calib_file] if self.calib_file else []
        cmd += ["--output-dir", out_dir]
        if model_dir is not None and not self.method.eval_only:
            cmd += ["--model-dir", model_dir, "--load-epoch", load_epoch(self.cfg_file, self.opts, self.load_epoch)]
        if model_dir is not None or self.method.eval_only:
            cmd += ["--eval-only"]
        return cmd + ["DATASET.NUM_SHOTS", str(self.shots), "DATASET.SUBSAMPLE_CLASSES", subsample, *self.opts]


def main(argv=None):
    """``python -m cpt.cli.catalog``: the method table (after loading ``CPT_PLUGINS``)."""
    from . import catalog  # the registry plugins write to (this file may run as __main__)
    from .plugins import load_plugins
    load_plugins()
    print("method\ttrainer\tconfig\tmulti-label config")
    for _, m in catalog.METHODS.items():
        print(f"{m.name}\t{m.trainer}\t{m.config}\t{m.ml_config or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
