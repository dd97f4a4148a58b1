"""test_read.py — tools/gnrev_read.py against gnrev_mpi's own numbers.

The final row of /metrics evaluates the final parameters on the whole training and test sets, and
row 0 of a full-batch run the initial ones on the whole training set. gnrev_read loads the
checkpoints of those steps, rebuilds the data set from the deck stored in them (synthetic: the
counter-based generator re-implemented in numpy; Fashion-MNIST: the IDX files and the pixel
normalisation; HDF5: a file this test writes) and evaluates the network in numpy: losses must equal
gnrev_mpi's to 1e-10 relative and accuracies exactly. Covered: GN and Adam, cross-entropy and MSE,
relu, tanh and identity blocks, with and without bias. Also: the flat parameter order of the reader
equals the one gnrev_mpi stores (/diagnostics/theta0 of the step-0 checkpoint); the command line's
eval prints the same loss, its csv the /metrics table of run.h5.
"""
import csv
import io
import os
import subprocess
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "py"))
import gnrun  # noqa: E402
from gnrun import check, finish, plan  # noqa: E402

sys.path.insert(0, os.path.join(gnrun.ROOT, "tools"))
import gnrev_read as gr  # noqa: E402

READER = os.path.join(gnrun.ROOT, "tools", "gnrev_read.py")
PYTHON = os.environ.get("PYTHON", sys.executable)
FMNIST = "/usr/share/datasets/fashion-mnist"


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


def compare_final(label, out, full_batch):
    """Final row (and, full batch, row 0) of /metrics against gnrev_read's numpy evaluation."""
    m = gr.load_metrics(out)
    cks = gr.checkpoints(out)
    final = gr.load_checkpoint(cks[-1][1])
    bad = []
    for which, lk, ak in (("train", "train_loss", "train_acc"), ("test", "test_loss", "test_acc")):
        X, y = gr.load_data(final.deck, which)
        loss, acc = gr.evaluate(final, X, y)
        if not (rel(loss, m[lk][-1]) < gnrun.tol(1e-10) and acc == m[ak][-1]):
            bad.append(f"{which}: numpy {loss!r} {acc!r}, gnrev_mpi {m[lk][-1]!r} {m[ak][-1]!r}")
    check(final.step == m["step"][-1] and not bad, f"{label}: final checkpoint evaluated in numpy equals the final "
          "row of /metrics (train and test sets)", "; ".join(bad) + f" (step {final.step} vs {m['step'][-1]})")
    if full_batch:
        first = gr.load_checkpoint(cks[0][1])
        X, y = gr.load_data(first.deck, "train")
        loss, acc = gr.evaluate(first, X, y)
        check(first.step == 0 and rel(loss, m["train_loss"][0]) < gnrun.tol(1e-10) and acc == m["train_acc"][0],
              f"{label}: step-0 checkpoint evaluated in numpy equals row 0 of /metrics",
              f"{loss!r} {acc!r} vs {m['train_loss'][0]!r} {m['train_acc'][0]!r}")
    return final


def synthetic_run(tmp):
    out = os.path.join(tmp, "synthetic")
    deck = gnrun.synthetic_deck(out, method="gn", lr=0.5, steps=3, diagnostics__weights_every=1,
                                model__activation="relu")
    p = gnrun.run(deck, np_=2)
    if not check(p.returncode == 0, "synthetic GN run (2 ranks)", p.stderr[-600:]):
        return
    compare_final("synthetic, gn, ce, relu", out, full_batch=True)
    first = gr.Checkpoint(gr.checkpoints(out)[0][1])
    check(first.theta0 is not None and np.array_equal(first.theta(), first.theta0),
          "reader's flat parameter order equals gnrev_mpi's (/diagnostics/theta0 at step 0)")
    # The command line: eval prints the same numbers, csv the /metrics table.
    p = subprocess.run([PYTHON, READER, "eval", out, "--set", "test"], capture_output=True, text=True, timeout=60)
    m = gr.load_metrics(out)
    got = p.stdout.split("loss ")[-1].split() if "loss " in p.stdout else []
    check(p.returncode == 0 and got and rel(float(got[0]), m["test_loss"][-1]) < gnrun.tol(1e-10),
          "gnrev_read.py eval prints the final test loss", p.stdout + p.stderr[-400:])
    p = subprocess.run([PYTHON, READER, "csv", out], capture_output=True, text=True, timeout=60)
    rows = list(csv.reader(io.StringIO(p.stdout)))
    with h5py.File(os.path.join(out, "run.h5"), "r") as f:
        want = {k: f["metrics"][k][()] for k in f["metrics"]}
    ok = p.returncode == 0 and rows and sorted(rows[0]) == sorted(want) and len(rows) == len(want["step"]) + 1
    if ok:
        for j, k in enumerate(rows[0]):
            col = np.array([float(r[j]) if r[j] else np.nan for r in rows[1:]])
            ok &= bool(np.all((col == want[k]) | (np.isnan(col) & np.isnan(want[k]))))
    check(ok, "gnrev_read.py csv writes /metrics exactly (empty cell = NaN)", p.stderr[-400:])


def fmnist_run(tmp):
    if not os.path.exists(os.path.join(FMNIST, "train-images-idx3-ubyte.gz")):
        check(False, "Fashion-MNIST installed (Debian dataset-fashion-mnist, tools/install-deps.sh)")
        return
    out = os.path.join(tmp, "fmnist")
    deck = {"run": {"name": "fm", "out_dir": out, "epochs": 3, "log_every": 10},
            "data": {"source": "fashion-mnist", "n_train": 64, "n_test": 48, "batch_size": 32},
            "model": {"blocks": 2, "hidden": 16, "activation": "tanh", "linear_first_block": False,
                      "init_std": 0.05},
            "optim": {"method": "adam", "lr": 0.01}}
    p = gnrun.run(deck, np_=2)
    if check(p.returncode == 0, "Fashion-MNIST Adam run (2 ranks)", p.stderr[-600:]):
        compare_final("fashion-mnist IDX, adam, ce, tanh in every block", out, full_batch=False)


def hdf5_run(tmp):
    rng = np.random.default_rng(5)
    path = os.path.join(tmp, "own.h5")
    with h5py.File(path, "w") as f:  # float64 on disk: gnrev_mpi and the reader both round to float32
        f["train/x"] = rng.standard_normal((50, 12))
        f["train/y"] = rng.integers(0, 3, 50).astype(np.int64)
        f["test/x"] = rng.standard_normal((30, 12))
        f["test/y"] = rng.integers(0, 3, 30).astype(np.int16)
    out = os.path.join(tmp, "hdf5")
    deck = {"run": {"name": "h", "out_dir": out, "epochs": 4, "seed": 3},
            "data": {"source": "hdf5", "path": path, "n_test": 25},
            "model": {"blocks": 3, "hidden": 10, "bias": False, "init_std": 0.1},
            "optim": {"method": "sgd", "lr": 0.05, "loss": "mse", "momentum": 0.9}}
    p = gnrun.run(deck, np_=1)
    if check(p.returncode == 0, "HDF5 SGD run with MSE and no bias", p.stderr[-600:]):
        ck = compare_final("hdf5, sgd, mse, no bias, 3 blocks", out, full_batch=True)
        check(all(blk[h]["b"] is None for blk in ck.blocks for h in "FG") and ck.optimizer.keys() == {"momentum_buffer"},
              "checkpoint without bias has no b tensors; SGD with momentum keeps its buffer",
              f"{list(ck.optimizer)}")


def main():
    plan(12)
    tmp = gnrun.scratch("gnrev_read_")
    synthetic_run(tmp)
    fmnist_run(tmp)
    hdf5_run(tmp)
    finish()


if __name__ == "__main__":
    main()
