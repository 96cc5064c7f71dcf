"""Default configuration with Dassl's keys plus the project's ``CALIB`` namespace (the merge order
of files and flags on top of it: ``cli/run.py``)."""
import os

from yacs.config import CfgNode as CN


def resource_path(*parts):
    """Path of a shipped resource, e.g. ``resource_path("configs", "datasets")``: beside the layer folders
    in a source checkout, inside the package in an installed copy."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), *parts)


def default_cache_dir():
    """Cache root: ``$CPT_CACHE_DIR`` or ``~/.cache/calibrated-prompt-tuning`` (never inside the dataset
    root, which may be read-only)."""
    env = os.environ.get("CPT_CACHE_DIR")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "calibrated-prompt-tuning")


_C = CN()
_C.OUTPUT_DIR = "./output"
_C.RESUME = ""
# -1 means "do not seed"; 0 is a valid seed.
_C.SEED = -1
_C.USE_CUDA = True
# Where few-shot splits, built splits, materialised worlds, feature caches live. Empty: default_cache_dir().
_C.CACHE_DIR = ""

_C.INPUT = CN()
_C.INPUT.SIZE = (224, 224)
_C.INPUT.INTERPOLATION = "bicubic"
_C.INPUT.TRANSFORMS = ()
_C.INPUT.NO_TRANSFORM = False
# CLIP's normalisation
_C.INPUT.PIXEL_MEAN = [0.48145466, 0.4578275, 0.40821073]
_C.INPUT.PIXEL_STD = [0.26862954, 0.26130258, 0.27577711]
_C.INPUT.CROP_PADDING = 4
_C.INPUT.RRCROP_SCALE = (0.08, 1.0)
_C.INPUT.GN_MEAN = 0.0
_C.INPUT.GN_STD = 0.15
_C.INPUT.COLORJITTER_B = 0.4
_C.INPUT.COLORJITTER_C = 0.4
_C.INPUT.COLORJITTER_S = 0.4
_C.INPUT.COLORJITTER_H = 0.1

_C.DATASET = CN()
_C.DATASET.ROOT = ""
_C.DATASET.NAME = ""
_C.DATASET.SOURCE_DOMAINS = ()
_C.DATASET.TARGET_DOMAINS = ()
# -1 (or 0): all training data
_C.DATASET.NUM_SHOTS = -1
# "all", "base" or "new"
_C.DATASET.SUBSAMPLE_CLASSES = "all"
SUBSAMPLE_CHOICES = ("all", "base", "new")
# Drop listed images that are not on disk (with a warning) instead of failing.
_C.DATASET.SKIP_MISSING_IMAGES = False
# A dataset's own keys (DATASET.<KEY>) are declared by its module (cpt.datasets.extend_cfg), a
# method's by its trainer class (cpt.trainers.config.extend_cfg).

_C.DATALOADER = CN()
_C.DATALOADER.NUM_WORKERS = 4
_C.DATALOADER.K_TRANSFORMS = 1
_C.DATALOADER.RETURN_IMG0 = False
_C.DATALOADER.PIN_MEMORY = True
_C.DATALOADER.PERSISTENT_WORKERS = True
_C.DATALOADER.TRAIN_X = CN()
_C.DATALOADER.TRAIN_X.BATCH_SIZE = 32
_C.DATALOADER.TEST = CN()
_C.DATALOADER.TEST.BATCH_SIZE = 32

_C.MODEL = CN()
_C.MODEL.INIT_WEIGHTS = ""
_C.MODEL.BACKBONE = CN()
_C.MODEL.BACKBONE.NAME = ""
_C.MODEL.BACKBONE.PRETRAINED = True
# open_clip pretrained tag (e.g. "laion2b_s34b_b88k"); empty: OpenAI weights for Dassl names.
_C.MODEL.BACKBONE.PRETRAINED_TAG = ""
# Run the causal text transformer on the shortest prefix holding every prompt's EOT token (same features,
# faster; only where exact, trainers/clip/backbone.py). False: always the full context.
_C.MODEL.BACKBONE.SHORT_TEXT = True

_C.OPTIM = CN()
_C.OPTIM.NAME = "adam"
_C.OPTIM.LR = 0.0003
_C.OPTIM.WEIGHT_DECAY = 5e-4
_C.OPTIM.MOMENTUM = 0.9
_C.OPTIM.SGD_DAMPNING = 0
_C.OPTIM.SGD_NESTEROV = False
_C.OPTIM.ADAM_BETA1 = 0.9
_C.OPTIM.ADAM_BETA2 = 0.999
# "single_step", "multi_step" or "cosine"
_C.OPTIM.LR_SCHEDULER = "single_step"
_C.OPTIM.STEPSIZE = (-1,)
_C.OPTIM.GAMMA = 0.1
_C.OPTIM.MAX_EPOCH = 10
# <= 0: no warmup
_C.OPTIM.WARMUP_EPOCH = -1
# "constant" or "linear"
_C.OPTIM.WARMUP_TYPE = "linear"
_C.OPTIM.WARMUP_CONS_LR = 1e-5
_C.OPTIM.WARMUP_MIN_LR = 1e-5
_C.OPTIM.WARMUP_RECOUNT = True

_C.TRAIN = CN()
# 0: save only the last epoch
_C.TRAIN.CHECKPOINT_FREQ = 0
_C.TRAIN.PRINT_FREQ = 10

_C.TEST = CN()
_C.TEST.EVALUATOR = "Classification"
_C.TEST.PER_CLASS_RESULT = False
_C.TEST.COMPUTE_CMAT = False
_C.TEST.NO_TEST = False
_C.TEST.SPLIT = "test"
_C.TEST.FINAL_MODEL = "last_step"
# Cache frozen-encoder image features on disk, shared by the runs of a sweep (engine/feature_cache.py).
_C.TEST.CACHE_FEATURES = True
# Disk bound of that cache in MB (least recently used entries are removed beyond it).
_C.TEST.CACHE_MAX_MB = 4096
# PIECE proximity: k nearest neighbours, pool "test" (the evaluated set, self excluded) or "train".
_C.TEST.PROXIMITY_K = 10
_C.TEST.PROXIMITY_POOL = "test"
# Save a reliability diagram PNG beside results.json.
_C.TEST.RELIABILITY_DIAGRAM = True
# Save the evaluated scores beside results.json as outputs_<split>.npz: "scores" (N, C) float32,
# exactly what the evaluator received (logits, after any post-hoc calibrator), "labels" (N,) class
# indices or (N, C) multi-hot (1 / 0 / -1 unknown), "index" (N,) dataset order.
_C.TEST.SAVE_OUTPUTS = False

_C.TRAINER = CN()
_C.TRAINER.NAME = ""

# Calibration (the project's namespace).
_C.CALIB = CN()
# Preset name used in output paths; empty -> derived from METHOD / POSTHOC.
_C.CALIB.NAME = ""
# Training regularizers to apply, e.g. ["tcpt"] or ["tcpt", "mbls"].
_C.CALIB.METHOD = []
# Post-hoc calibrator applied at test time: "none", "temperature", "dac", "sals".
_C.CALIB.POSTHOC = "none"
# CALIB.<NAME> (TCPT, CCR, MBLS, ZS_NORM, PENALTY, DOR, DAC, any registered by a plugin): one node per
# regularizer / post-hoc calibrator with parameters, keys and defaults from its class's ``defaults``.


def add_calib_nodes(calib):
    """Add ``CALIB.<NAME>`` for every registered regularizer and post-hoc calibrator with
    ``defaults`` (upper-cased keys); nodes already there are kept."""
    from ..calibration.posthoc import POSTHOC
    from ..calibration.regularizers import REGULARIZERS

    for name, cls in REGULARIZERS.items() + POSTHOC.items():
        if cls.defaults and name.upper() not in calib:
            calib[name.upper()] = CN({k.upper(): v for k, v in cls.defaults.items()})
    return calib


# Accepted and ignored: Dassl keys that upstream yamls may set but nothing here reads (semi-supervised
# and domain samplers, the linear head, staged LR, ...), with Dassl's defaults, so those yamls load; a
# file or option that sets another value gets a warning naming it (engine/config_check.py).
DASSL_IGNORED = {
    "VERSION": 1,
    "VERBOSE": True,
    "INPUT.CUTOUT_N": 1,
    "INPUT.CUTOUT_LEN": 16,
    "DATASET.NUM_LABELED": -1,
    "DATASET.VAL_PERCENT": 0.1,
    "DATALOADER.TRAIN_X.SAMPLER": "RandomSampler",
    "DATALOADER.TRAIN_X.N_DOMAIN": 0,
    "DATALOADER.TRAIN_X.N_INS": 16,
    "DATALOADER.TRAIN_U.SAME_AS_X": True,
    "DATALOADER.TRAIN_U.SAMPLER": "RandomSampler",
    "DATALOADER.TRAIN_U.BATCH_SIZE": 32,
    "DATALOADER.TRAIN_U.N_DOMAIN": 0,
    "DATALOADER.TRAIN_U.N_INS": 16,
    "DATALOADER.TEST.SAMPLER": "SequentialSampler",
    "MODEL.HEAD.NAME": "",
    "MODEL.HEAD.HIDDEN_LAYERS": (),
    "MODEL.HEAD.ACTIVATION": "relu",
    "MODEL.HEAD.BN": True,
    "MODEL.HEAD.DROPOUT": 0.0,
    "OPTIM.RMSPROP_ALPHA": 0.99,
    "OPTIM.STAGED_LR": False,
    "OPTIM.NEW_LAYERS": (),
    "OPTIM.BASE_LR_MULT": 0.1,
    "TRAIN.COUNT_ITER": "train_x",
}
for _key, _value in DASSL_IGNORED.items():
    _node = _C
    for _part in _key.split(".")[:-1]:
        _node = _node.setdefault(_part, CN())
    _node[_key.rsplit(".", 1)[-1]] = _value


def get_cfg_default():
    cfg = _C.clone()
    add_calib_nodes(cfg.CALIB)
    return cfg


def resolve_cache_dir(cfg):
    return cfg.CACHE_DIR or default_cache_dir()


def calib_name(cfg):
    """Name of the calibration setting for output paths: 'none' when nothing is on."""
    if cfg.CALIB.NAME:
        return cfg.CALIB.NAME
    parts = [m.lower() for m in cfg.CALIB.METHOD]
    if cfg.CALIB.POSTHOC and cfg.CALIB.POSTHOC != "none":
        parts.append(cfg.CALIB.POSTHOC.lower())
    return "+".join(parts) if parts else "none"
