"""How the tests run the command line: one place for the argv of each test setup and for calling
``train.main`` / ``train.cli`` in-process. Options passed by a test come last, so they win."""
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# the randomly initialised tiny CLIP (seeded by --seed 1, so every run has the same weights)
TINY_CLIP = ("INPUT.SIZE", "(32, 32)", "INPUT.TRANSFORMS", "('normalize',)", "DATALOADER.NUM_WORKERS", "0",
             "OPTIM.NAME", "sgd", "OPTIM.LR", "0.5", "MODEL.BACKBONE.NAME", "world-tiny",
             "MODEL.BACKBONE.PRETRAINED", "False", "TRAIN.PRINT_FREQ", "100", "TEST.RELIABILITY_DIAGRAM", "False")
# the 5-class EngineFixture tree of tests/engine_fixtures.py
ENGINE_FIXTURE = ("DATASET.NAME", "EngineFixture", "DATALOADER.TRAIN_X.BATCH_SIZE", "8",
                  "DATALOADER.TEST.BATCH_SIZE", "16")

# the options each prompt learner is tested with (CoOp/CoCoOp/KgCoOp start from the zero-shot words)
INIT = {"CoOp": ["TRAINER.COOP.CTX_INIT", "a photo of a"],
        "KgCoOp": ["TRAINER.KGCOOP.CTX_INIT", "a photo of a"],
        "CoCoOp": ["TRAINER.COCOOP.CTX_INIT", "a photo of a"],
        "MaPLe": ["TRAINER.MAPLE.PROMPT_DEPTH", "3"],
        "ZeroshotCLIP": ["TRAINER.ZSCLIP.TEMPLATE", "a photo of a {}."]}


def train_main(argv):
    """``train.main`` on ``argv`` in this process; returns the trainer."""
    import train

    return train.main(train.build_parser().parse_args([str(a) for a in argv]))


def cli(argv, capsys):
    """``train.cli(argv)`` here: ``(exit status, stdout, stderr)``; 0 when it returns."""
    import train

    try:
        train.cli([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def clip_args(root, out, trainer, *opts, flags=(), epochs=1, data=ENGINE_FIXTURE):
    """A prompt learner with the random tiny CLIP on ``data`` (default: the EngineFixture tree)."""
    return ["--root", root, "--output-dir", out, "--trainer", trainer, "--seed", "1", *flags,
            *TINY_CLIP, *data, "OPTIM.MAX_EPOCH", str(epochs), *opts]


def run(root, out, trainer, *opts, flags=(), epochs=1, data=ENGINE_FIXTURE):
    """:func:`clip_args` through ``train.main``; returns the trainer."""
    return train_main(clip_args(root, out, trainer, *opts, flags=flags, epochs=epochs, data=data))


def engine_args(root, out, *extra, epochs=3, seed=1):
    """EngineTiny on the EngineFixture tree with a warmup + cosine schedule (engine tests, DDP)."""
    return ["--root", root, "--output-dir", out, "--trainer", "EngineTiny", "--seed", str(seed), *extra,
            "DATASET.NAME", "EngineFixture", "INPUT.SIZE", "(8, 8)", "DATALOADER.NUM_WORKERS", "0",
            "DATALOADER.TRAIN_X.BATCH_SIZE", "4", "OPTIM.NAME", "sgd", "OPTIM.LR", "0.5",
            "OPTIM.MAX_EPOCH", str(epochs), "OPTIM.LR_SCHEDULER", "cosine", "OPTIM.WARMUP_EPOCH", "1",
            "OPTIM.WARMUP_TYPE", "constant", "OPTIM.WARMUP_CONS_LR", "0.01", "INPUT.TRANSFORMS", "('normalize',)"]


def tiny_args(root, out, *opts, flags=(), trainer="EngineTiny", dataset="DescribableTextures", epochs=1):
    """EngineTiny (tests/engine_fixtures.py, a linear probe on 8x8 inputs) on a fixture tree."""
    return ["--root", root, "--output-dir", out, "--trainer", trainer, "--seed", "1", *flags,
            "DATASET.NAME", dataset, "INPUT.SIZE", "(8, 8)", "INPUT.TRANSFORMS", "normalize",
            "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "4", "OPTIM.NAME", "sgd",
            "OPTIM.LR", "0.1", "OPTIM.MAX_EPOCH", str(epochs), "TEST.RELIABILITY_DIAGRAM", "False", *opts]


def world_coop_args(data, out, *opts, epochs=3, shots=2, seed=1):
    """CoOp on the offline world's 32 base classes with the shipped tiny CLIP: 2 shots x 32 classes
    = 4 batches of 16 per epoch; 1,600 test images."""
    return ["--root", data, "--output-dir", out, "--trainer", "CoOp", "--seed", str(seed),
            "--dataset-config-file", os.path.join(REPO, "configs", "datasets", "shapeworld.yaml"),
            "--config-file", os.path.join(REPO, "configs", "trainers", "CoOp", "world_ep50.yaml"),
            "DATASET.NUM_SHOTS", str(shots), "DATASET.SUBSAMPLE_CLASSES", "base", "OPTIM.MAX_EPOCH", str(epochs),
            "DATALOADER.TRAIN_X.BATCH_SIZE", "16", "DATALOADER.TEST.BATCH_SIZE", "800",
            "TEST.RELIABILITY_DIAGRAM", "False", *opts]
