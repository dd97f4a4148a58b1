#!/usr/bin/python3
"""gnrev_read.py — read gnrev's outputs in Python: a run's metrics, a checkpoint's tensors, the data
set a run trained on, and a checkpoint's forward pass in numpy. Needs numpy and h5py only.

As a module (put tools/ on sys.path, or copy this file next to your notebook):

    import gnrev_read as gr
    m = gr.load_metrics("runs/x")                 # {"step": array, "train_loss": array, ...}
    ck = gr.load_checkpoint(gr.checkpoints("runs/x")[-1][1])
    ck.step, ck.deck["optim"]["lr"], ck.blocks[0]["F"]["W"].shape
    X, y = gr.load_data(ck.deck, "test")          # as the run saw it (normalised float32)
    logits = gr.forward(ck, X)                    # n x C, float64
    loss, acc = gr.evaluate(ck, X, y)

From the shell:

    tools/gnrev_read.py metrics runs/x            # the /metrics table, aligned columns
    tools/gnrev_read.py csv runs/x [-o m.csv]     # the same as CSV (empty cell = not measured)
    tools/gnrev_read.py checkpoint runs/x         # tensors of the newest checkpoint (or give a file)
    tools/gnrev_read.py eval runs/x [--set test]  # loss and accuracy of a checkpoint, in numpy

The model (docs/algorithm.md, docs/output-format.md): the state X (n x d, d = 2m) splits into halves
x1 = X[:, :m], x2 = X[:, m:]; block b maps them to y1 = x1 + F(x2), y2 = x2 + G(y1) with
F(z) = phi(z C_F) W_F + b_F (G alike); phi is the deck's activation, the identity in block 0 when
linear_first_block; the logits are X_B U. The inputs are those of docs/input-format.md: IDX and
CIFAR-10 pixels normalised in double and rounded to float32 once, HDF5 features as stored (float32),
synthetic sets regenerated from the seed with the same counter-based generator (Philox4x32-10) as
gnrev_mpi. Relative data paths in a deck are relative to the folder the run was started from: pass
root= (or --root) when that is not the current folder.
"""
import argparse
import csv
import gzip
import math
import os
import re
import signal
import sys

import h5py
import numpy as np

# /metrics columns in the order gnrev writes them (docs/output-format.md); others follow sorted.
METRIC_ORDER = ["step", "epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "wall_s",
                "batch_loss_before", "batch_loss_after", "step_s"]

# Pixel normalisation of docs/input-format.md: v = (p/255 - mean)/std per channel.
PIXEL_NORM = {"fashion-mnist": ([0.2860], [0.3530]), "mnist": ([0.1307], [0.3081]),
              "cifar10": ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616])}
DEFAULT_PATH = {"fashion-mnist": "/usr/share/datasets/fashion-mnist", "mnist": "/usr/share/datasets/mnist",
                "cifar10": "data/cifar-10-batches-bin"}


# ---- files ------------------------------------------------------------------------------------

def run_file(run):
    """run.h5 of a run folder (or the path itself when it is a file)."""
    return os.path.join(run, "run.h5") if os.path.isdir(run) else run


def _text(v):
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


def parse_deck(text):
    """The effective deck (namelist text, as stored in the attribute "deck") as
    {group: {key: value}}: strings, bools, ints and floats."""
    groups, cur = {}, None
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("!"):
            continue
        if s.startswith("&"):
            cur = groups.setdefault(s[1:].split()[0].lower(), {})
            continue
        if s == "/" or cur is None:
            continue
        key, _, val = s.partition("=")
        val = val.strip()
        if val[:1] in "'\"":
            v = val[1:-1].replace(val[0] * 2, val[0])
        elif val.lower() in (".true.", "t", ".t."):
            v = True
        elif val.lower() in (".false.", "f", ".f."):
            v = False
        else:
            try:
                v = int(val)
            except ValueError:
                v = float(val.lower().replace("d", "e"))
        cur[key.strip().lower()] = v
    return groups


def read_deck(path):
    """(text, parsed) of the effective deck stored in a run.h5 or checkpoint (or a run folder)."""
    with h5py.File(run_file(path), "r") as f:
        text = _text(f.attrs["deck"])
    return text, parse_deck(text)


def _ordered(names):
    return [n for n in METRIC_ORDER if n in names] + sorted(n for n in names if n not in METRIC_ORDER)


def load_group(run, group):
    """Every dataset of a group of run.h5 (e.g. "metrics", "ntk", "gn") as numpy arrays; {} when absent."""
    with h5py.File(run_file(run), "r") as f:
        if group not in f:
            return {}
        return {k: f[group][k][()] for k in f[group] if isinstance(f[group][k], h5py.Dataset)}


def load_metrics(run):
    """The /metrics series of run.h5: {name: float64 array}, one entry per row (row t describes the
    parameters after t updates; the last row evaluates the final parameters on the whole sets)."""
    m = load_group(run, "metrics")
    return {k: np.asarray(m[k], dtype=float) for k in _ordered(m)}


def _cell(v):
    """A CSV cell that reads back as the same double: "" for NaN, integers without ".0"."""
    v = float(v)
    if not np.isfinite(v):
        return "" if np.isnan(v) else ("inf" if v > 0 else "-inf")
    return str(int(v)) if v.is_integer() and abs(v) < 2.0 ** 53 else repr(v)


def write_csv(columns, out):
    """columns {name: 1-D array} of equal length -> CSV at out (a path or a file object): a header,
    then one line per row; NaN (not measured) is an empty cell, other values round-trip exactly."""
    names = list(columns)
    n = len(columns[names[0]]) if names else 0
    own = isinstance(out, str)
    f = open(out, "w", newline="") if own else out
    try:
        w = csv.writer(f)
        w.writerow(names)
        for i in range(n):
            w.writerow([_cell(columns[k][i]) for k in names])
    finally:
        if own:
            f.close()


def metrics_csv(run, out):
    """Writes the /metrics of a run as CSV (see write_csv)."""
    write_csv(load_metrics(run), out)


def checkpoints(run):
    """[(step, path)] of the checkpoints of a run folder, oldest first."""
    folder = os.path.join(run, "checkpoints")
    found = []
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
        m = re.fullmatch(r"step_(\d+)\.h5", name)
        if m:
            found.append((int(m.group(1)), os.path.join(folder, name)))
    return sorted(found)


class Checkpoint:
    """One checkpoint: step, epoch, deck (parsed), deck_text, attrs, U (d x C), blocks
    (blocks[b]["F" or "G"] = {"C": m x h, "W": h x m, "b": m or None}), optimizer ({name: flat array})
    and, when diagnostics were on, theta0 (the flat parameters at step 0)."""

    def __init__(self, path):
        self.path = path
        with h5py.File(path, "r") as f:
            self.attrs = {k: (_text(v) if isinstance(v, (bytes, str)) else v) for k, v in f.attrs.items()}
            self.step, self.epoch = int(f.attrs["step"]), int(f.attrs["epoch"])
            self.deck_text = _text(f.attrs["deck"])
            self.deck = parse_deck(self.deck_text)
            self.U = f["model/U"][()]
            self.blocks = []
            for name in sorted(k for k in f["model"] if k.startswith("block_")):
                blk = {}
                for half in ("F", "G"):
                    g = f["model"][name][half]
                    blk[half] = {"C": g["C"][()], "W": g["W"][()], "b": g["b"][()] if "b" in g else None}
                self.blocks.append(blk)
            self.optimizer = {k: f["optimizer"][k][()] for k in f["optimizer"]} if "optimizer" in f else {}
            self.theta0 = f["diagnostics/theta0"][()] if "diagnostics/theta0" in f else None

    def theta(self):
        """The trained parameters in gnrev's flat order: per block, F then G, [W; b] row-major."""
        parts = []
        for blk in self.blocks:
            for half in ("F", "G"):
                parts.append(blk[half]["W"].ravel())
                if blk[half]["b"] is not None:
                    parts.append(blk[half]["b"].ravel())
        return np.concatenate(parts)


def load_checkpoint(path):
    """A checkpoint file (or a run folder: its newest checkpoint)."""
    if os.path.isdir(path):
        found = checkpoints(path)
        if not found:
            raise FileNotFoundError(f"{path}/checkpoints holds no step_*.h5")
        path = found[-1][1]
    return Checkpoint(path)


# ---- the model --------------------------------------------------------------------------------

def activations(deck, blocks):
    """phi of each block: the deck's activation, the identity in block 0 when linear_first_block."""
    model = deck.get("model", {})
    act = model.get("activation", "relu")
    return ["identity" if (b == 0 and model.get("linear_first_block", True)) else act for b in range(blocks)]


def _phi(name, a):
    if name == "relu":
        return np.maximum(a, 0.0)
    if name == "tanh":
        return np.tanh(a)
    if name == "identity":
        return a
    raise ValueError(f"unknown activation {name!r}")


def forward(ck, X, return_state=False):
    """Logits (n x C, float64) of the checkpoint's network on inputs X (n x d); with
    return_state, also the state X_B before the output map."""
    X = np.array(X, dtype=np.float64)
    m = X.shape[1] // 2
    if X.shape[1] != 2 * m or X.shape[1] != ck.U.shape[0]:
        raise ValueError(f"inputs of width {X.shape[1]}; the model expects d = {ck.U.shape[0]}")
    for blk, act in zip(ck.blocks, activations(ck.deck, len(ck.blocks))):
        for half, (inp, out) in (("F", (slice(m, None), slice(0, m))), ("G", (slice(0, m), slice(m, None)))):
            p = blk[half]
            branch = _phi(act, X[:, inp] @ p["C"]) @ p["W"]
            if p["b"] is not None:
                branch += p["b"]
            X[:, out] += branch
    logits = X @ ck.U
    return (logits, X) if return_state else logits


def loss_and_accuracy(logits, y, loss="ce"):
    """Mean loss (cross-entropy in nats, or 0.5 |logits - onehot|^2) and accuracy (first arg-max)."""
    y = np.asarray(y, dtype=np.int64)
    n, C = logits.shape
    if loss == "ce":
        mx = logits.max(axis=1, keepdims=True)
        lse = mx[:, 0] + np.log(np.exp(logits - mx).sum(axis=1))
        per = lse - logits[np.arange(n), y]
    elif loss == "mse":
        onehot = np.zeros_like(logits)
        onehot[np.arange(n), y] = 1.0
        per = 0.5 * ((logits - onehot) ** 2).sum(axis=1)
    else:
        raise ValueError(f"unknown loss {loss!r}")
    return float(per.mean()), float((logits.argmax(axis=1) == y).mean())


def evaluate(ck, X, y):
    """(mean loss, accuracy) of the checkpoint on (X, y) with the deck's loss."""
    return loss_and_accuracy(forward(ck, X), y, ck.deck.get("optim", {}).get("loss", "ce"))


# ---- the data ---------------------------------------------------------------------------------

_PHILOX_M = (0xD2511F53, 0xCD9E8D57)
_PHILOX_W = (0x9E3779B9, 0xBB67AE85)
_MASK32 = np.uint64(0xFFFFFFFF)


def philox(seed, stream, sub, index):
    """Philox4x32-10 (Random123) of counters (index, stream, sub) under key seed, as gnrev draws
    them: two uint64 words per index (index: array)."""
    index = np.asarray(index, dtype=np.uint64)
    c0, c1 = index & _MASK32, index >> np.uint64(32)
    c2 = np.full_like(index, np.uint64(sub) & _MASK32)
    c3 = np.full_like(index, np.uint64(stream) & _MASK32)
    k0, k1 = int(seed) & 0xFFFFFFFF, (int(seed) >> 32) & 0xFFFFFFFF
    for r in range(10):
        if r:
            k0, k1 = (k0 + _PHILOX_W[0]) & 0xFFFFFFFF, (k1 + _PHILOX_W[1]) & 0xFFFFFFFF
        p0, p1 = np.uint64(_PHILOX_M[0]) * c0, np.uint64(_PHILOX_M[1]) * c2
        hi0, lo0, hi1, lo1 = p0 >> np.uint64(32), p0 & _MASK32, p1 >> np.uint64(32), p1 & _MASK32
        c0, c1, c2, c3 = hi1 ^ c1 ^ np.uint64(k0), lo1, hi0 ^ c3 ^ np.uint64(k1), lo0
    return (c1 << np.uint64(32)) | c0, (c3 << np.uint64(32)) | c2


def _open_unit(w):
    return ((w >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0 ** -53


def rng_normal(seed, stream, sub, index):
    """gnrev's standard normals (Box-Muller on the two words of one counter) at the indices."""
    w0, w1 = philox(seed, stream, sub, index)
    return np.sqrt(-2.0 * np.log(_open_unit(w0))) * np.cos(2.0 * math.pi * _open_unit(w1))


def _synthetic(deck, which):
    data, seed = deck["data"], deck["run"]["seed"]
    d, C = data["dim"], data["classes"]
    n = data["synthetic_train"] if which == "train" else data["synthetic_test"]
    teacher = rng_normal(seed, 7, 0, np.arange(d * C)).reshape(d, C)          # GN_RNG_SYNTH_TEACHER
    x = rng_normal(seed, 6, 0 if which == "train" else 1, np.arange(n * d)).reshape(n, d).astype(np.float32)
    y = (x.astype(np.float64) @ teacher).argmax(axis=1).astype(np.int32)     # GN_RNG_SYNTH_X
    return x, y


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _idx(folder, base):
    for p in (os.path.join(folder, base + ".gz"), os.path.join(folder, base)):
        if os.path.exists(p):
            return gzip.decompress(_read(p)) if p.endswith(".gz") else _read(p)
    raise FileNotFoundError(f"{folder}/{base}.gz or {folder}/{base}")


def _pixels(source, raw):
    mean, std = PIXEL_NORM[source]
    lut = np.stack([((np.arange(256) / 255.0 - mu) / sd).astype(np.float32) for mu, sd in zip(mean, std)])
    if len(mean) == 1:
        return lut[0][raw]
    per = raw.shape[1] // len(mean)
    return np.concatenate([lut[c][raw[:, c * per:(c + 1) * per]] for c in range(len(mean))], axis=1)


def load_data(deck, which="train", root="."):
    """(x float32 n x d, y int32 n) of the training or test set as the run loaded it: the first
    n_train / n_test samples (0: all), normalised as docs/input-format.md says."""
    if which not in ("train", "test"):
        raise ValueError("which must be 'train' or 'test'")
    data = deck["data"]
    source = data["source"]
    keep = data.get("n_train" if which == "train" else "n_test", 0)
    path = data.get("path") or DEFAULT_PATH.get(source, "")
    if path and not os.path.isabs(path):
        path = os.path.join(root, path)
    if source == "synthetic":
        x, y = _synthetic(deck, which)
    elif source in ("fashion-mnist", "mnist"):
        prefix = "train" if which == "train" else "t10k"
        img, lab = _idx(path, f"{prefix}-images-idx3-ubyte"), _idx(path, f"{prefix}-labels-idx1-ubyte")
        count, rows, cols = (int.from_bytes(img[o:o + 4], "big") for o in (4, 8, 12))
        raw = np.frombuffer(img, dtype=np.uint8, offset=16, count=count * rows * cols).reshape(count, rows * cols)
        x, y = _pixels(source, raw), np.frombuffer(lab, dtype=np.uint8, offset=8, count=count).astype(np.int32)
    elif source == "cifar10":
        files = [f"data_batch_{k}.bin" for k in range(1, 6)] if which == "train" else ["test_batch.bin"]
        rec = np.concatenate([np.frombuffer(_read(os.path.join(path, f)), dtype=np.uint8).reshape(-1, 3073)
                              for f in files])
        x, y = _pixels(source, rec[:, 1:]), rec[:, 0].astype(np.int32)
    elif source == "hdf5":
        with h5py.File(path, "r") as f:
            x, y = f[which]["x"][()].astype(np.float32), f[which]["y"][()].astype(np.int32)
    else:
        raise ValueError(f"unknown data source {source!r}")
    if keep:
        x, y = x[:keep], y[:keep]
    return x, y


# ---- command line -----------------------------------------------------------------------------

def _print_table(cols, out=sys.stdout):
    names = list(cols)
    print(" ".join(f"{n:>14s}" for n in names), file=out)
    for i in range(len(cols[names[0]]) if names else 0):
        print(" ".join("%14s" % ("-" if not np.isfinite(cols[n][i]) else f"{cols[n][i]:.8g}") for n in names), file=out)


def main(argv=None):
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `gnrev_read.py csv run | head` ends quietly
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("metrics", help="print the /metrics table of a run")
    p.add_argument("run")
    p = sub.add_parser("csv", help="write the /metrics table of a run as CSV")
    p.add_argument("run")
    p.add_argument("-o", "--out", help="CSV file (default: standard output)")
    p = sub.add_parser("checkpoint", help="list the tensors of a checkpoint")
    p.add_argument("path", help="checkpoint file, or run folder (its newest checkpoint)")
    p = sub.add_parser("eval", help="loss and accuracy of a checkpoint, computed in numpy")
    p.add_argument("path", help="checkpoint file, or run folder (its newest checkpoint)")
    p.add_argument("--set", choices=("train", "test"), default="test")
    p.add_argument("--root", default=".", help="folder the run was started from (relative data paths)")
    a = ap.parse_args(argv)
    if a.cmd == "metrics":
        _print_table(load_metrics(a.run))
    elif a.cmd == "csv":
        if a.out:
            metrics_csv(a.run, a.out)
        else:
            metrics_csv(a.run, sys.stdout)
    elif a.cmd == "checkpoint":
        ck = load_checkpoint(a.path)
        print(f"{ck.path}: step {ck.step}, epoch {ck.epoch}, {len(ck.blocks)} blocks, "
              f"{ck.theta().size} trained parameters")
        print(f"  model/U {ck.U.shape}")
        for b, blk in enumerate(ck.blocks):
            for half in ("F", "G"):
                for k, v in blk[half].items():
                    if v is not None:
                        print(f"  model/block_{b:03d}/{half}/{k} {v.shape}")
        for k, v in ck.optimizer.items():
            print(f"  optimizer/{k} {v.shape}")
    elif a.cmd == "eval":
        ck = load_checkpoint(a.path)
        X, y = load_data(ck.deck, a.set, a.root)
        loss, acc = evaluate(ck, X, y)
        print(f"{ck.path}: step {ck.step}, {a.set} set ({len(y)} samples): loss {loss:.17g} accuracy {acc:.17g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
