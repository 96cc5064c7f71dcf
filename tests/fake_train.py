"""A stand-in for train.py used by tests/test_scripts.py and tests/test_sweep.py (not a test).

Accepts train.py's flags, appends one JSON line per call to ``$FAKE_LOG`` (argv, cwd,
CUDA_VISIBLE_DEVICES), sleeps ``$FAKE_SLEEP`` seconds, then writes ``results.json`` (atomically)
in ``--output-dir`` with the fields of the real one. ``$FAKE_FAIL`` (comma-separated
``dataset/seed/subsample``) makes matching calls write ``"status": "failed"`` and exit 1.
A call with ``--model-dir`` exits 3 unless that directory holds a finished results.json.
Metrics: accuracy = 70 + seed (+10 on base), ece = 2 * seed (+1 on new).
"""
import json
import os
import sys
import time


def main(argv):
    flags, opts, i = {}, [], 0
    while i < len(argv):
        a = argv[i]
        if a in ("--eval-only", "--no-train"):
            flags[a] = True
            i += 1
        elif a.startswith("--"):
            flags[a] = argv[i + 1]
            i += 2
        else:
            opts.append(a)
            i += 1
    kv = dict(zip(opts[0::2], opts[1::2]))
    out = flags["--output-dir"]
    dataset = os.path.basename(flags["--dataset-config-file"])[:-5]
    seed = int(flags["--seed"])
    sub = kv.get("DATASET.SUBSAMPLE_CLASSES", "all")
    calib = os.path.basename(flags["--calib-config-file"])[:-5] if "--calib-config-file" in flags else "none"
    log = os.environ.get("FAKE_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps({"argv": argv, "cwd": os.getcwd(),
                                "cvd": os.environ.get("CUDA_VISIBLE_DEVICES")}) + "\n")
    if "--model-dir" in flags:
        try:
            with open(os.path.join(flags["--model-dir"], "results.json")) as f:
                assert json.load(f)["status"] == "finished"
        except Exception:
            print(f"fake train: no finished model in {flags['--model-dir']}", file=sys.stderr)
            return 3
    time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
    os.makedirs(out, exist_ok=True)
    failed = f"{dataset}/{seed}/{sub}" in os.environ.get("FAKE_FAIL", "").split(",")
    res = {
        "status": "failed" if failed else "finished",
        "trainer": flags.get("--trainer"),
        "config": os.path.basename(flags["--config-file"])[:-5],
        "dataset": dataset, "shots": int(kv.get("DATASET.NUM_SHOTS", -1)), "seed": seed, "subsample": sub,
        "calibration": calib,
        "metrics": {"accuracy": 70.0 + seed + (10 if sub == "base" else 0), "ece": 2.0 * seed + (1 if sub == "new" else 0)},
        "wall_time_s": 0.0,
    }
    if failed:
        res["error"] = "FAKE_FAIL"
    tmp = os.path.join(out, "results.json.tmp")
    with open(tmp, "w") as f:
        json.dump(res, f, indent=2)
    os.replace(tmp, os.path.join(out, "results.json"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
