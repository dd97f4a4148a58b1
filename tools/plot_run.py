#!/usr/bin/python3
"""plot_run.py — figures of one or more gnrev runs (run.h5, docs/output-format.md), runs overlaid.

    tools/plot_run.py runs/a runs/b [-o report/]       (also: make report RUNS="runs/a runs/b")

Each argument is a run folder (or its run.h5). Writes PNGs into the output folder:
  loss.png          train/test loss and accuracy against step (/metrics)
  batch_change.png  100 (after - before) / before of each batch's own update (/metrics)
  ntk.png           NTK similarity, relative change, alignment, growth and trace per half-block
                    against step (/ntk)
  cka.png           CKA of each half-block's state against step 0 (/cka), one panel per half-block
  weights.png       cosine of each trained W to its initial value (/weights)
  ggn_spectrum.png  GGN eigenvalues of the first and last snapshot (/ggn)
  summary.md        one table row per run: losses, accuracies, batch change, NTK and CKA at the end
A figure that no run has data for is skipped, and every run lacking a group is named in a note;
the exit status is 0 unless no run could be read at all.
"""
import argparse
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import h5py  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def note(msg):
    print(f"plot_run: note: {msg}", file=sys.stderr)


def run_name(path, f):
    """The deck's &run name when the file records one, else the folder name."""
    deck = f.attrs.get("deck", "")
    if isinstance(deck, bytes):
        deck = deck.decode(errors="replace")
    m = re.search(r"^\s*name\s*=\s*(['\"])(.*?)\1", deck or "", re.MULTILINE | re.IGNORECASE)
    folder = os.path.basename(os.path.normpath(os.path.dirname(path)))
    return m.group(2) if m and m.group(2) else (folder or path)


def read_group(f, group):
    """All datasets of a group as numpy arrays (None when the group is absent or empty)."""
    if group not in f or not isinstance(f[group], h5py.Group):
        return None
    out = {k: f[group][k][()] for k in f[group] if isinstance(f[group][k], h5py.Dataset)}
    out["_attrs"] = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f[group].attrs.items()}
    return out if len(out) > 1 else None


def load(path):
    h5 = os.path.join(path, "run.h5") if os.path.isdir(path) else path
    with h5py.File(h5, "r") as f:
        run = {"name": run_name(h5, f), "path": h5}
        for g in ("metrics", "ntk", "cka", "weights", "ggn"):
            run[g] = read_group(f, g)
    return run


def unique_names(runs):
    seen = {}
    for r in runs:
        n = r["name"]
        seen[n] = seen.get(n, 0) + 1
        if seen[n] > 1:
            r["name"] = f"{n} ({os.path.dirname(r['path']) or r['path']})"


def finite(x, y):
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def with_group(runs, group, what, needed=()):
    have = []
    for r in runs:
        g = r[group]
        if g is None or any(k not in g for k in needed):
            note(f"run '{r['name']}' has no /{group}{' ' + '/'.join(needed) if needed else ''}: left out of {what}")
        else:
            have.append(r)
    if not have:
        note(f"no run has /{group}: {what} skipped")
    return have


def save(fig, out, name, written):
    path = os.path.join(out, name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)


def colours(n):
    cmap = plt.get_cmap("tab10")
    return [cmap(i % 10) for i in range(n)]


def plot_loss(runs, out, written):
    have = with_group(runs, "metrics", "loss.png", ("step", "train_loss"))
    if not have:
        return
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for r, c in zip(have, colours(len(have))):
        m = r["metrics"]
        for key, style, label in (("train_loss", "-", "train"), ("test_loss", "--", "test")):
            if key in m:
                x, y = finite(m["step"], m[key])
                if len(x):
                    ax[0].plot(x, y, style, color=c, label=f"{r['name']} {label}")
        for key, style, label in (("train_acc", "-", "train"), ("test_acc", "--", "test")):
            if key in m:
                x, y = finite(m["step"], m[key])
                if len(x):
                    ax[1].plot(x, y, style, color=c, label=f"{r['name']} {label}")
    ax[0].set(xlabel="step", ylabel="loss", title="loss")
    ax[1].set(xlabel="step", ylabel="accuracy", title="accuracy")
    if any(np.nanmin(finite(r["metrics"]["step"], r["metrics"]["train_loss"])[1], initial=1) > 0 for r in have):
        ax[0].set_yscale("log")
    for a in ax:
        a.legend(fontsize=7)
        a.grid(alpha=0.3)
    save(fig, out, "loss.png", written)


def plot_batch_change(runs, out, written):
    have, candidates = [], with_group(runs, "metrics", "batch_change.png", ("step", "batch_loss_before", "batch_loss_after"))
    for r in candidates:
        m = r["metrics"]
        if np.isfinite(m["batch_loss_after"]).any():
            have.append(r)
        else:
            note(f"run '{r['name']}' did not record batch_loss_after (batch_change off): left out of batch_change.png")
    if not have:
        if candidates:
            note("no run has batch changes: batch_change.png skipped")
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for r, c in zip(have, colours(len(have))):
        m = r["metrics"]
        with np.errstate(divide="ignore", invalid="ignore"):
            pct = 100 * (m["batch_loss_after"] - m["batch_loss_before"]) / m["batch_loss_before"]
        x, y = finite(m["step"], pct)
        ax.plot(x, y, ".-", color=c, label=r["name"], ms=3)
    ax.axhline(0, color="k", lw=0.5)
    ax.set(xlabel="step", ylabel="batch loss change (%)", title="loss of each batch after its own update")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    save(fig, out, "batch_change.png", written)


def plot_ntk(runs, out, written):
    have = with_group(runs, "ntk", "ntk.png", ("step", "similarity", "rel_change"))
    if not have:
        return
    # One panel per /ntk series that every run has (older runs lack alignment, scale, half_trace).
    series = [("similarity", "cos(K_0 v, K_t v)", "NTK similarity to step 0"),
              ("rel_change", "||K_t - K_0||_F / ||K_0||_F", "NTK relative change"),
              ("alignment", "<K_0, K_t>_F / (||K_0|| ||K_t||)", "NTK alignment to step 0"),
              ("scale", "||K_t||_F / ||K_0||_F", "NTK growth")]
    series = [s for s in series if all(s[0] in r["ntk"] for r in have)]
    halves = any("half_trace" in r["ntk"] for r in have)
    n = len(series) + (1 if halves else 0)
    rows = 1 if n <= 3 else 2
    cols = (n + rows - 1) // rows
    fig, ax = plt.subplots(rows, cols, figsize=(5.5 * cols, 4 * rows), squeeze=False)
    ax = ax.ravel()
    for r, c in zip(have, colours(len(have))):
        g = r["ntk"]
        for a, (key, _, _) in zip(ax, series):
            a.plot(*finite(g["step"], g[key]), "o-", color=c, label=r["name"], ms=3)
        if "half_trace" in g:
            # Each half-block's trace against its own step-0 value: which part of the net moves K.
            ht = np.asarray(g["half_trace"], dtype=float)
            labels = str(r["cka"]["_attrs"].get("half_blocks", "")).split(",") if r["cka"] is not None else []
            for k, ls in zip(range(ht.shape[1]), ("-", "--", ":", "-.") * ht.shape[1]):
                name = labels[k] if k < len(labels) and labels[k] else f"half-block {k}"
                ax[len(series)].plot(*finite(g["step"], ht[:, k] / ht[0, k]), ls, marker="o", color=c, ms=3,
                                     label=f"{r['name']} {name}")
    for a, (_, ylabel, title) in zip(ax, series):
        a.set(xlabel="step", ylabel=ylabel, title=title)
    if halves:
        ax[len(series)].set(xlabel="step", ylabel="tr K_bs(t) / tr K_bs(0)", title="NTK trace per half-block",
                            yscale="log")
    for a in ax[:n]:
        a.legend(fontsize=6)
        a.grid(alpha=0.3)
    for a in ax[n:]:
        a.axis("off")
    save(fig, out, "ntk.png", written)


def plot_cka(runs, out, written):
    have = with_group(runs, "cka", "cka.png", ("step", "value"))
    if not have:
        return
    names = []
    for r in have:
        labels = str(r["cka"]["_attrs"].get("half_blocks", "")).split(",")
        width = r["cka"]["value"].shape[1]
        r["_cka_labels"] = labels if len(labels) == width else [f"half-block {k}" for k in range(width)]
        names += [n for n in r["_cka_labels"] if n not in names]
    cols = min(len(names), 4)
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3 * rows), squeeze=False)
    for k, name in enumerate(names):
        a = axes[k // cols][k % cols]
        for r, c in zip(have, colours(len(have))):
            if name in r["_cka_labels"]:
                j = r["_cka_labels"].index(name)
                a.plot(*finite(r["cka"]["step"], r["cka"]["value"][:, j]), "o-", color=c, label=r["name"], ms=3)
        a.set(title=name, xlabel="step", ylabel="CKA to step 0")
        a.grid(alpha=0.3)
        if k == 0:
            a.legend(fontsize=7)
    for k in range(len(names), rows * cols):
        axes[k // cols][k % cols].axis("off")
    save(fig, out, "cka.png", written)


def plot_weights(runs, out, written):
    have = with_group(runs, "weights", "weights.png", ("step", "cosine"))
    if not have:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for r, c in zip(have, colours(len(have))):
        g = r["weights"]
        names = str(g["_attrs"].get("tensors", "")).split(",")
        for j in range(g["cosine"].shape[1]):
            label = names[j] if len(names) == g["cosine"].shape[1] else f"tensor {j}"
            if label.endswith("/b"):
                continue  # biases start at zero: no angle to their initial value
            ax.plot(*finite(g["step"], g["cosine"][:, j]), "-", color=c, alpha=0.8,
                    label=f"{r['name']}" if j == 0 else None)
    ax.set(xlabel="step", ylabel="cos(W_t, W_0)", title="weight drift (one line per W)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    save(fig, out, "weights.png", written)


def plot_ggn(runs, out, written):
    have = with_group(runs, "ggn", "ggn_spectrum.png", ("step", "eigenvalues"))
    if not have:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for r, c in zip(have, colours(len(have))):
        g = r["ggn"]
        ev = np.atleast_2d(g["eigenvalues"])
        for row, style in ((0, "--"), (ev.shape[0] - 1, "-")):
            v = ev[row][np.isfinite(ev[row]) & (ev[row] > 0)]
            if len(v):
                ax.semilogy(np.arange(1, len(v) + 1), v, style + "o", color=c, ms=3,
                            label=f"{r['name']} step {int(g['step'][row])}")
            if ev.shape[0] == 1:
                break
    ax.set(xlabel="index", ylabel="eigenvalue", title="GGN spectrum (first snapshot dashed, last solid)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    save(fig, out, "ggn_spectrum.png", written)


def last_finite(x, y):
    """(x, y) of the last point where y is finite, or (nan, nan)."""
    x, y = finite(x, y)
    return (x[-1], y[-1]) if len(y) else (np.nan, np.nan)


def at_step(g, key, step):
    """g[key] where g["step"] == step and the value is finite, else nan."""
    if g is None or key not in g:
        return np.nan
    x, y = finite(g["step"], g[key])
    hit = np.nonzero(x == step)[0]
    return y[hit[0]] if len(hit) else np.nan


def write_summary(runs, out, written):
    """summary.md: the numbers a results page quotes, one row per run, read from run.h5 as is."""
    head = ("| run | steps | train loss 0 / 10 / end | train acc end | test acc end | batch change median % "
            "| NTK similarity | NTK alignment | NTK growth | min CKA |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]

    def fmt(v, f="{:.3g}"):
        return "–" if v is None or not np.isfinite(v) else f.format(v)

    for r in runs:
        m, n, c = r["metrics"], r["ntk"], r["cka"]
        end, loss_end = last_finite(m["step"], m["train_loss"]) if m is not None and "train_loss" in m else (np.nan, np.nan)
        acc = last_finite(m["step"], m["train_acc"])[1] if m is not None and "train_acc" in m else np.nan
        test = last_finite(m["step"], m["test_acc"])[1] if m is not None and "test_acc" in m else np.nan
        change = np.nan
        if m is not None and "batch_loss_before" in m and "batch_loss_after" in m:
            b, a = np.asarray(m["batch_loss_before"], float), np.asarray(m["batch_loss_after"], float)
            ok = np.isfinite(b) & np.isfinite(a) & (b > 0)
            change = np.median(100 * (a[ok] - b[ok]) / b[ok]) if ok.any() else np.nan
        ntk = [last_finite(n["step"], n[k])[1] if n is not None and k in n else np.nan
               for k in ("similarity", "alignment", "scale")]
        cka = np.nan
        if c is not None and "value" in c and len(c["value"]):
            cka = np.nanmin(np.asarray(c["value"], float)[-1])
        losses = " / ".join(fmt(v) for v in (at_step(m, "train_loss", 0), at_step(m, "train_loss", 10), loss_end))
        lines.append(f"| {r['name']} | {fmt(end, '{:.0f}')} | {losses} | {fmt(acc)} | {fmt(test)} | "
                     f"{fmt(change, '{:.1f}')} | {fmt(ntk[0])} | {fmt(ntk[1])} | {fmt(ntk[2])} | {fmt(cka, '{:.4f}')} |")
    path = os.path.join(out, "summary.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    written.append(path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run folders (or their run.h5)")
    ap.add_argument("-o", "--out", default="report", help="output folder for the PNGs (default: report/)")
    a = ap.parse_args(argv)
    runs = []
    for p in a.runs:
        try:
            runs.append(load(p))
        except (OSError, KeyError) as e:
            note(f"cannot read run '{p}': {e}: skipped")
    if not runs:
        print("plot_run: error: no run could be read", file=sys.stderr)
        return 2
    unique_names(runs)
    os.makedirs(a.out, exist_ok=True)
    written = []
    for plot in (plot_loss, plot_batch_change, plot_ntk, plot_cka, plot_weights, plot_ggn, write_summary):
        plot(runs, a.out, written)
    for w in written:
        print(w)
    return 0


if __name__ == "__main__":
    sys.exit(main())
