#!/usr/bin/python3
"""plot_theorem43.py — the tractable GN trajectory against the Moore-Penrose one (the paper's
Theorem 4.3): for every learning rate, how far apart the two trajectories' losses and output
gradients are, and how that gap shrinks with the learning rate.

    tools/plot_theorem43.py RUN ... [-o folder]

Each RUN is a full-batch run folder of method 'gn', taken with gn_reference = .false. (the tractable
step) or .true. (the Moore-Penrose step B J^+ eps). Runs whose effective decks differ only in
gn_reference, name, out_dir, epochs and max_steps form a pair; pairs differ in lr (and perhaps
seed). The theorem: for any two right inverses of the Jacobian J, the output gradients
eps = dL/df along the two trajectories agree to O(lr) over a fixed flow time tau = lr * t (both
follow d f / d tau = -B eps to first order, the factor B being the same for both here).

Measured per pair, at the steps both runs have:
  loss gap      |L_tract(t) - L_mp(t)|, the training loss of /metrics (every step)
  gradient gap  ||eps_tract(t) - eps_mp(t)||_F / ||eps(0)||_F, eps = softmax(logits) - onehot (ce)
                or logits - onehot (mse) on the training set, recomputed in numpy from the
                checkpoints both runs saved (&checkpoint every, keep large enough)
Writes into the folder (default report/):
  theorem43.png  training loss against tau (tractable solid, Moore-Penrose dashed), the gradient
                 gap against tau, and the largest gaps against lr on log-log axes with a slope-1
                 guide and the fitted slope
  theorem43.md   one row per pair: lr, steps, tau, final losses, largest loss and gradient gaps;
                 then the fitted slopes
Needs numpy, h5py and matplotlib (tools/gnrev_read.py reads the runs and the data).
"""
import argparse
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gnrev_read  # noqa: E402

# Keys in which the two runs of a pair, or the pairs of one figure, may differ.
PAIR_KEYS = {("optim", "gn_reference"), ("run", "name"), ("run", "out_dir"), ("run", "epochs"),
             ("run", "max_steps")}


def fail(msg):
    print(f"plot_theorem43: error: {msg}", file=sys.stderr)
    sys.exit(2)


def output_gradient(ck, X, y):
    """eps = dL_i/df_i of every training sample (n x C): softmax(logits) - onehot for 'ce' (the
    residual GN inverts with output_hessian 'identity'), logits - onehot for 'mse'."""
    logits = gnrev_read.forward(ck, X)
    onehot = np.zeros_like(logits)
    onehot[np.arange(len(y)), np.asarray(y, np.int64)] = 1.0
    if ck.deck.get("optim", {}).get("loss", "ce") == "mse":
        return logits - onehot
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True) - onehot


def read_run(folder):
    text, deck = gnrev_read.read_deck(folder)
    optim = deck.get("optim", {})
    if optim.get("method", "gn") != "gn":
        fail(f"{folder}: method {optim.get('method')!r}; Theorem 4.3 compares two 'gn' runs")
    if deck.get("data", {}).get("batch_size", 0) not in (0, None) and \
            deck["data"]["batch_size"] != deck["data"].get("n_train"):
        fail(f"{folder}: batch_size {deck['data']['batch_size']}; the comparison needs full-batch runs")
    m = gnrev_read.load_metrics(folder)
    # /metrics: row t is theta_t; the final row repeats the last step's evaluation on the whole set.
    loss = {}
    for s, v in zip(m["step"], m["train_loss"]):
        if np.isfinite(v):
            loss[int(s)] = float(v)
    key = tuple(sorted((g, k, repr(v)) for g, kv in deck.items() for k, v in kv.items() if (g, k) not in PAIR_KEYS))
    return {"folder": folder, "deck": deck, "reference": bool(optim.get("gn_reference", False)),
            "lr": float(optim.get("lr", 0.1)), "seed": deck.get("run", {}).get("seed"), "loss": loss,
            "key": key, "checkpoints": dict(gnrev_read.checkpoints(folder))}


def pair_runs(runs):
    """[(tractable, reference)] sorted by lr, then seed; every run must find its partner."""
    by_key = {}
    for r in runs:
        by_key.setdefault(r["key"], []).append(r)
    pairs = []
    for key, members in by_key.items():
        tr = [r for r in members if not r["reference"]]
        mp = [r for r in members if r["reference"]]
        if len(tr) != 1 or len(mp) != 1:
            fail("each tractable run needs exactly one Moore-Penrose partner with the same deck (but "
                 f"gn_reference, name, out_dir, epochs, max_steps); found {len(tr)} tractable and {len(mp)} "
                 f"Moore-Penrose runs among {[r['folder'] for r in members]}")
        pairs.append((tr[0], mp[0]))
    return sorted(pairs, key=lambda p: (p[0]["lr"], str(p[0]["seed"])))


def measure(tr, mp, root="."):
    """The gaps of one pair: loss gap at every common step, gradient gap at every common checkpoint."""
    steps = sorted(set(tr["loss"]) & set(mp["loss"]))
    loss_gap = np.array([abs(tr["loss"][s] - mp["loss"][s]) for s in steps])
    X, y = gnrev_read.load_data(tr["deck"], "train", root=root)
    ck_steps = sorted(set(tr["checkpoints"]) & set(mp["checkpoints"]))
    grad_gap, eps0 = [], None
    for s in ck_steps:
        e_tr = output_gradient(gnrev_read.load_checkpoint(tr["checkpoints"][s]), X, y)
        e_mp = output_gradient(gnrev_read.load_checkpoint(mp["checkpoints"][s]), X, y)
        if eps0 is None:
            eps0 = np.linalg.norm(e_tr)
        grad_gap.append(np.linalg.norm(e_tr - e_mp) / eps0)
    return {"lr": tr["lr"], "seed": tr["seed"], "steps": np.array(steps, float), "loss_tr": np.array([tr["loss"][s] for s in steps]),
            "loss_mp": np.array([mp["loss"][s] for s in steps]), "loss_gap": loss_gap,
            "ck_steps": np.array(ck_steps, float), "grad_gap": np.array(grad_gap, float)}


def slope(lrs, gaps):
    """Least-squares slope of log(gap) against log(lr) (NaN with fewer than two positive gaps)."""
    lrs, gaps = np.asarray(lrs, float), np.asarray(gaps, float)
    ok = (gaps > 0) & np.isfinite(gaps)
    if ok.sum() < 2:
        return np.nan
    return float(np.polyfit(np.log(lrs[ok]), np.log(gaps[ok]), 1)[0])


def largest(x):
    x = np.asarray(x, float)
    return float(np.nanmax(x)) if len(x) and np.isfinite(x).any() else np.nan


def make_figure(results):
    fig, ax = plt.subplots(1, 3, figsize=(16, 4.6))
    cmap = plt.get_cmap("viridis")
    lrs = sorted({r["lr"] for r in results})
    colour = {lr: cmap(i / max(1, len(lrs) - 1) * 0.9) for i, lr in enumerate(lrs)}
    labelled = set()
    for r in results:
        c = colour[r["lr"]]
        # One legend entry per lr (its seeds share the colour).
        n_seeds = sum(x["lr"] == r["lr"] for x in results)
        label = None if r["lr"] in labelled else f"lr {r['lr']:g}" + (f" ({n_seeds} seeds)" if n_seeds > 1 else "")
        labelled.add(r["lr"])
        ax[0].plot(r["lr"] * r["steps"], r["loss_tr"], "-", color=c, label=label)
        ax[0].plot(r["lr"] * r["steps"], r["loss_mp"], "--", color=c)
        ok = r["grad_gap"] > 0
        ax[1].semilogy(r["lr"] * r["ck_steps"][ok], r["grad_gap"][ok], "o-", color=c, ms=3, label=label)
    ax[0].plot([], [], "-", color="grey", label="tractable")
    ax[0].plot([], [], "--", color="grey", label="Moore-Penrose")
    ax[0].set(xlabel="flow time tau = lr * step", ylabel="training loss", yscale="log",
              title="training loss (tractable solid, Moore-Penrose dashed)")
    ax[1].set(xlabel="flow time tau = lr * step", ylabel="||eps_tr - eps_mp||_F / ||eps_0||_F",
              title="output-gradient gap between the trajectories")
    x = np.array([r["lr"] for r in results])
    for key, marker, name in (("grad_gap", "o", "largest gradient gap"), ("loss_gap", "s", "largest loss gap")):
        y = np.array([largest(r[key]) for r in results])
        ax[2].loglog(x, y, marker, ms=6, label=f"{name} (fitted slope {slope(x, y):.2f})")
        ok = np.isfinite(y) & (y > 0)
        if ok.any():
            i = np.argmin(np.where(ok, x, np.inf))
            guide = np.array([x[ok].min(), x[ok].max()])
            ax[2].loglog(guide, y[i] * guide / x[i], ":", color="grey")
    ax[2].plot([], [], ":", color="grey", label="slope 1")
    ax[2].set_xticks(sorted(set(x.tolist())))
    ax[2].xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax[2].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax[2].set(xlabel="lr", ylabel="largest gap over the horizon", title="gap against lr")
    for a in ax:
        a.grid(alpha=0.3, which="both")
        a.legend(fontsize=6)
    fig.tight_layout()
    return fig


def write_table(results, path):
    lines = ["| lr | seed | steps | tau = lr * steps | final loss tractable | final loss Moore-Penrose "
             "| largest loss gap | largest gradient gap |", "|" + " --- |" * 8]
    for r in results:
        lines.append(f"| {r['lr']:g} | {r['seed']} | {int(r['steps'][-1])} | {r['lr'] * r['steps'][-1]:.3g} "
                     f"| {r['loss_tr'][-1]:.4g} | {r['loss_mp'][-1]:.4g} | {largest(r['loss_gap']):.3g} "
                     f"| {largest(r['grad_gap']):.3g} |")
    x = [r["lr"] for r in results]
    lines += ["", f"Fitted slope of log(gap) against log(lr): loss gap "
              f"{slope(x, [largest(r['loss_gap']) for r in results]):.2f}, gradient gap "
              f"{slope(x, [largest(r['grad_gap']) for r in results]):.2f} (1 = O(lr))."]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run folders: tractable and Moore-Penrose GN runs")
    ap.add_argument("-o", "--out", default="report", help="output folder (default: report/)")
    ap.add_argument("--root", default=".", help="folder the runs were started from (relative data paths)")
    a = ap.parse_args(argv)
    runs = []
    for folder in a.runs:
        try:
            runs.append(read_run(folder))
        except (OSError, KeyError) as e:
            fail(f"cannot read run '{folder}': {e}")
    results = [measure(tr, mp, a.root) for tr, mp in pair_runs(runs)]
    os.makedirs(a.out, exist_ok=True)
    fig = make_figure(results)
    fig.savefig(os.path.join(a.out, "theorem43.png"), dpi=110)
    write_table(results, os.path.join(a.out, "theorem43.md"))
    for name in ("theorem43.png", "theorem43.md"):
        print(os.path.join(a.out, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
