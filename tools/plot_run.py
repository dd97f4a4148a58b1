#!/usr/bin/python3
"""plot_run.py — figures and a summary of one or more gnrev runs (run.h5, docs/output-format.md).

    tools/plot_run.py [RUN ...] [-o report/] [--csv] [--no-aggregate]
    make report [RUNS="runs/a runs/b"]

Each RUN is a run folder (or its run.h5); without any, every run folder under runs/ (searched
recursively) is reported. Runs are named by their deck's &run name, or by their out_dir when two
runs share a name. Runs of the same deck that differ only in seed, name and out_dir are seeds of one
experiment: their curves are drawn as the mean over the seeds with a band of one standard deviation
(population, over the runs that have the value at that step), unless --no-aggregate.

Writes into the output folder:
  loss.png          train (solid) and test (dashed, markers) loss and accuracy against step, epoch
                    and wall time (/metrics)
  batch_change.png  100 (after - before) / before of each batch's own update (/metrics)
  ntk.png           NTK similarity, relative change, alignment, growth and trace per half-block
                    of the logit-space kernel (/ntk)
  ntk_protocols.png the two NTK protocols side by side, similarity and growth ||K_t v||/||K_0 v||:
                    the logits on the logit-space probe (/ntk) and the output before U on the
                    output-space probe (/ntk/output); drawn when a run has /ntk/output
  ntk_matrix.png    the NTK matrix itself at its first and last saved snapshot (/ntk/K_*)
  cka.png           CKA of each half-block's state against step 0 (/cka), one panel per half-block
  weights.png       cosine to the initial value and norm ratio of every trained W, one labelled line
                    per tensor, one column per run or group of seeds (/weights)
The diagnostics' curves (ntk, ntk_protocols, cka, weights) of a group of seeds are, like the
metrics, the mean over the seeds with a band of one standard deviation, on the steps every seed
measured.
  ggn_spectrum.png  GGN eigenvalues of the first (dashed, open squares) and last (solid, dots)
                    snapshot (/ggn)
  summary.md        one table row per run (and per group of seeds: mean ± standard deviation)
  csv/              with --csv: <run>.csv, the /metrics table of each run (empty cell = not
                    measured), and <group>.seeds.csv, mean and standard deviation over the seeds
A figure that no run has data for is skipped, and every run left out of a figure is named in a note
on stderr; the exit status is 0 unless no run could be read at all.
"""
import argparse
import os
import re
import sys
import warnings

import matplotlib

matplotlib.use("Agg")
import h5py  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import ticker  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gnrev_read  # noqa: E402

# Keys that may differ between seeds of one experiment.
SEED_KEYS = {("run", "seed"), ("run", "name"), ("run", "out_dir")}
AGG_METRICS = ["train_loss", "train_acc", "test_loss", "test_acc", "batch_loss_before", "batch_loss_after",
               "wall_s"]


def note(msg):
    print(f"plot_run: note: {msg}", file=sys.stderr)


# ---- reading -----------------------------------------------------------------------------------

def read_group(f, group):
    """All datasets of a group as numpy arrays plus its attributes under "_attrs" (None when the
    group is absent or empty). NTK matrices K_* are listed under "_matrices" (step -> path), not read."""
    if group not in f or not isinstance(f[group], h5py.Group):
        return None
    out, mats = {}, {}
    for k in f[group]:
        if not isinstance(f[group][k], h5py.Dataset):
            continue
        m = re.fullmatch(r"K_(\d+)", k) if group == "ntk" else None
        if m:
            mats[int(m.group(1))] = f"/{group}/{k}"
        elif re.fullmatch(r"(gamma|lambda)_\d+", k) is None:
            out[k] = f[group][k][()]
    out["_attrs"] = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f[group].attrs.items()}
    out["_matrices"] = mats
    return out if len(out) > 2 else None


def load(path):
    h5 = gnrev_read.run_file(path)
    with h5py.File(h5, "r") as f:
        deck_text = f.attrs.get("deck", "")
        deck_text = deck_text.decode(errors="replace") if isinstance(deck_text, bytes) else str(deck_text)
        run = {"path": h5, "folder": os.path.dirname(h5) or ".", "deck": gnrev_read.parse_deck(deck_text)}
        for g in ("metrics", "ntk", "cka", "weights", "ggn"):
            run[g] = read_group(f, g)
        run["ntk_output"] = read_group(f, "ntk/output")
    run["deck_name"] = run["deck"].get("run", {}).get("name") or os.path.basename(os.path.normpath(run["folder"]))
    run["out_dir"] = os.path.normpath(run["folder"])  # as given (or as found under runs/)
    return run


def find_runs(root="runs"):
    """Every folder under root holding a run.h5, sorted."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "checkpoints")
        if "run.h5" in files:
            found.append(folder)
    return sorted(found)


def name_runs(runs):
    """Deck names, or out_dirs for every run whose deck name another run shares."""
    count = {}
    for r in runs:
        count[r["deck_name"]] = count.get(r["deck_name"], 0) + 1
    for r in runs:
        r["name"] = r["out_dir"] if count[r["deck_name"]] > 1 else r["deck_name"]


def deck_key(run):
    """The deck without the keys in which seeds of one experiment differ."""
    return tuple(sorted((g, k, repr(v)) for g, kv in run["deck"].items() for k, v in kv.items()
                        if (g, k) not in SEED_KEYS))


def group_seeds(runs, aggregate=True):
    """Series to draw: a group of seeds (>= 2 runs of one deck) or a single run, in first-seen order.
    Each is {"label", "runs", "metrics"} with metrics the run's own or the seeds' mean (aggregate())."""
    groups, order = {}, []
    for r in runs:
        key = deck_key(r) if aggregate and r["deck"] else id(r)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(r)
    series = []
    for key in order:
        members = groups[key]
        if len(members) == 1:
            r = members[0]
            series.append({"label": r["name"], "runs": members, "metrics": r["metrics"], "spread": None})
            continue
        seeds = sorted(m["deck"].get("run", {}).get("seed") for m in members)
        names = {m["deck_name"] for m in members}
        label = f"{names.pop() if len(names) == 1 else members[0]['name']} (mean of {len(members)} seeds)"
        mean, std = aggregate_metrics([m["metrics"] for m in members])
        series.append({"label": label, "runs": members, "metrics": mean, "spread": std, "seeds": seeds})
    return series


def aggregate_metrics(tables):
    """Mean and population standard deviation of /metrics tables over runs, row by row on the steps
    every run has; a value missing (NaN) in some runs is averaged over the others. Returns (mean,
    std) tables with step, epoch, n_runs and the AGG_METRICS columns; (None, None) without /metrics."""
    tables = [t for t in tables if t is not None and "step" in t]
    if not tables:
        return None, None
    steps = sorted(set.intersection(*(set(np.asarray(t["step"], float).tolist()) for t in tables)))
    mean = {"step": np.array(steps, float)}
    std = {"step": np.array(steps, float)}
    rows = [{s: i for i, s in enumerate(np.asarray(t["step"], float).tolist())} for t in tables]
    first = tables[0]
    mean["epoch"] = std["epoch"] = np.array([first["epoch"][rows[0][s]] for s in steps], float) \
        if "epoch" in first else np.full(len(steps), np.nan)
    mean["n_runs"] = std["n_runs"] = np.full(len(steps), float(len(tables)))
    for key in AGG_METRICS:
        if not all(key in t for t in tables):
            continue
        vals = np.array([[t[key][r[s]] for s in steps] for t, r in zip(tables, rows)], float)
        have = np.isfinite(vals)
        cnt = have.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            m = np.where(have, vals, 0.0).sum(axis=0) / cnt
            v = np.where(have, (vals - m) ** 2, 0.0).sum(axis=0) / cnt
        mean[key], std[key] = np.where(cnt > 0, m, np.nan), np.where(cnt > 0, np.sqrt(v), np.nan)
    return mean, std


# ---- helpers -----------------------------------------------------------------------------------

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


def colours(n):
    cmap = plt.get_cmap("tab10")
    return [cmap(i % 10) for i in range(n)]


def readable_log(ax, axis="y"):
    """A log axis over less than a decade shows one labelled tick or none: label the minor ticks
    then, so that every log axis reads at least two values."""
    a = ax.yaxis if axis == "y" else ax.xaxis
    lo, hi = ax.get_ylim() if axis == "y" else ax.get_xlim()
    if lo > 0 and hi > 0 and np.floor(np.log10(hi)) - np.ceil(np.log10(lo)) < 1:
        a.set_minor_formatter(ticker.LogFormatterSciNotation(labelOnlyBase=False, minor_thresholds=(np.inf, np.inf)))
        a.set_major_formatter(ticker.LogFormatterSciNotation(labelOnlyBase=False))


def sparse_marker(x):
    """Markers for series with few points (test evaluations every eval_every steps), lines alone for
    dense ones."""
    return "o" if len(x) <= 60 else None


def epoch_axis(m):
    """Fractional epoch of each row: epoch + (step - first step of that epoch) / steps per epoch,
    steps per epoch counted in epoch 0 when a later epoch exists (else the integer epoch)."""
    step, epoch = np.asarray(m["step"], float), np.asarray(m["epoch"], float)
    later = epoch > epoch.min()
    if not later.any():
        return epoch
    spe = float(np.sum(epoch == epoch.min()))
    first = {e: step[epoch == e].min() for e in np.unique(epoch)}
    return epoch + np.array([(s - first[e]) / spe for s, e in zip(step, epoch)])


def wall_axis(m):
    """wall_s made continuous across restarts (each continuation counts from 0 again)."""
    w = np.asarray(m["wall_s"], float).copy()
    offset, prev = 0.0, -np.inf
    for i, v in enumerate(w):
        if np.isfinite(v):
            if v + offset < prev:
                offset = prev
            w[i] = v + offset
            prev = w[i]
    return w


def band(ax, x, mean, std, colour):
    x, mean, std = np.asarray(x, float), np.asarray(mean, float), np.asarray(std, float)
    ok = np.isfinite(x) & np.isfinite(mean) & np.isfinite(std)
    if ok.any():
        ax.fill_between(x[ok], (mean - std)[ok], (mean + std)[ok], color=colour, alpha=0.2, lw=0)


# ---- figures: each make_* returns a figure (or None) ------------------------------------------

def make_loss(series):
    have = [s for s in series if s["metrics"] is not None and "step" in s["metrics"] and "train_loss" in s["metrics"]]
    for s in series:
        if s not in have:
            note(f"run '{s['label']}' has no /metrics step/train_loss: left out of loss.png")
    if not have:
        return None
    fig, ax = plt.subplots(2, 3, figsize=(15, 8), squeeze=False)
    axes_x = [("step", "step", lambda m: np.asarray(m["step"], float)),
              ("epoch", "epoch", lambda m: epoch_axis(m) if "epoch" in m else None),
              ("wall", "wall time (s)", lambda m: wall_axis(m) if "wall_s" in m else None)]
    positive = True
    for s, c in zip(have, colours(len(have))):
        m, sp = s["metrics"], s["spread"]
        for col, (_, xlabel, xf) in enumerate(axes_x):
            x = xf(m)
            if x is None:
                continue
            for row, keys in enumerate((("train_loss", "test_loss"), ("train_acc", "test_acc"))):
                for key, style, what in zip(keys, ("-", "--"), ("train", "test")):
                    if key not in m:
                        continue
                    xx, yy = finite(x, m[key])
                    if not len(xx):
                        continue
                    marker = sparse_marker(xx) if what == "test" else None
                    ax[row][col].plot(xx, yy, style, color=c, marker=marker, ms=3, label=f"{s['label']} {what}")
                    if sp is not None and key in sp:
                        band(ax[row][col], x, m[key], sp[key], c)
                    if row == 0 and np.any(yy <= 0):
                        positive = False
    for col, (_, xlabel, _) in enumerate(axes_x):
        ax[0][col].set(xlabel=xlabel, ylabel="loss", title=f"loss against {xlabel}")
        ax[1][col].set(xlabel=xlabel, ylabel="accuracy", title=f"accuracy against {xlabel}")
        if positive:
            ax[0][col].set_yscale("log")
            readable_log(ax[0][col])
        for row in (0, 1):
            ax[row][col].grid(alpha=0.3)
    ax[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def make_batch_change(series):
    have = []
    for s in series:
        m = s["metrics"]
        if m is None or "batch_loss_after" not in m or "batch_loss_before" not in m:
            note(f"run '{s['label']}' has no /metrics batch_loss_before/batch_loss_after: left out of batch_change.png")
        elif not np.isfinite(m["batch_loss_after"]).any():
            note(f"run '{s['label']}' did not record batch_loss_after (batch_change off): left out of batch_change.png")
        else:
            have.append(s)
    if not have:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for s, c in zip(have, colours(len(have))):
        if s["spread"] is None:
            m = s["metrics"]
            with np.errstate(divide="ignore", invalid="ignore"):
                pct = 100 * (m["batch_loss_after"] - m["batch_loss_before"]) / m["batch_loss_before"]
            ax.plot(*finite(m["step"], pct), ".-", color=c, label=s["label"], ms=3)
            continue
        # Seeds: the percentage of each run, then its mean and spread over the runs.
        pcts = []
        for r in s["runs"]:
            m = r["metrics"]
            with np.errstate(divide="ignore", invalid="ignore"):
                pcts.append(dict(zip(np.asarray(m["step"], float).tolist(),
                                     100 * (m["batch_loss_after"] - m["batch_loss_before"]) / m["batch_loss_before"])))
        steps = np.asarray(s["metrics"]["step"], float)
        vals = np.array([[p.get(st, np.nan) for st in steps] for p in pcts], float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, std = np.nanmean(vals, axis=0), np.nanstd(vals, axis=0)
        ax.plot(*finite(steps, mean), ".-", color=c, label=s["label"], ms=3)
        band(ax, steps, mean, std, c)
    ax.axhline(0, color="k", lw=0.5)
    ax.set(xlabel="step", ylabel="batch loss change (%)", title="loss of each batch after its own update")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def diag_mean(runs, group, key, col=None, scale_by_first=False):
    """One diagnostic series of a group of runs: (steps, mean, std) over the runs on the steps every
    run has (population std, NaN values left out; std None for a single run). col picks a column of a
    2-D table; scale_by_first divides each run's series by its first row (a ratio to step 0)."""
    tables = []
    for r in runs:
        g = r[group]
        if g is None or key not in g or "step" not in g:
            continue
        y = np.asarray(g[key], float)
        y = y[:, col] if col is not None else y
        if scale_by_first:
            with np.errstate(divide="ignore", invalid="ignore"):
                y = y / y[0]
        tables.append(dict(zip(np.asarray(g["step"], float).tolist(), y)))
    if not tables:
        return None
    steps = sorted(set.intersection(*(set(t) for t in tables)))
    vals = np.array([[t[st] for st in steps] for t in tables], float).reshape(len(tables), len(steps))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a step no run measured: all-NaN mean
        mean, std = np.nanmean(vals, axis=0), np.nanstd(vals, axis=0)
    return np.array(steps, float), mean, (std if len(tables) > 1 else None)


def draw_mean(ax, stats, colour, label, style="-", marker="o"):
    """A series of diag_mean() as a line with markers and, for seeds, a band of one std."""
    if stats is None:
        return
    x, mean, std = stats
    ax.plot(*finite(x, mean), style, marker=marker, color=colour, label=label, ms=3)
    if std is not None:
        band(ax, x, mean, std, colour)


def diag_series(series, group, what, needed):
    """The series (groups of seeds or single runs) whose runs all have /group with the needed
    datasets; every run left out is named in a note."""
    have = []
    for s in series:
        ok = [r for r in s["runs"] if r[group] is not None and all(k in r[group] for k in needed)]
        for r in s["runs"]:
            if r not in ok:
                note(f"run '{r['name']}' has no /{group.replace('_', '/')}"
                     f"{' ' + '/'.join(needed) if needed else ''}: left out of {what}")
        if ok:
            have.append(dict(s, runs=ok))
    if not have:
        note(f"no run has /{group.replace('_', '/')}: {what} skipped")
    return have


def make_ntk(series):
    have = diag_series(series, "ntk", "ntk.png", ("step", "similarity", "rel_change"))
    if not have:
        return None
    panels = [("similarity", "cos(K_0 v, K_t v)", "NTK similarity to step 0"),
              ("rel_change", "||K_t - K_0||_F / ||K_0||_F", "NTK relative change"),
              ("alignment", "<K_0, K_t>_F / (||K_0|| ||K_t||)", "NTK alignment to step 0"),
              ("scale", "||K_t||_F / ||K_0||_F", "NTK growth")]
    panels = [p for p in panels if all(p[0] in r["ntk"] for s in have for r in s["runs"])]
    halves = any("half_trace" in r["ntk"] for s in have for r in s["runs"])
    n = len(panels) + (1 if halves else 0)
    rows = 1 if n <= 3 else 2
    cols = (n + rows - 1) // rows
    fig, ax = plt.subplots(rows, cols, figsize=(5.5 * cols, 4 * rows), squeeze=False)
    ax = ax.ravel()
    for s, c in zip(have, colours(len(have))):
        for a, (key, _, _) in zip(ax, panels):
            draw_mean(a, diag_mean(s["runs"], "ntk", key), c, s["label"])
        runs = [r for r in s["runs"] if "half_trace" in r["ntk"]]
        if runs:
            first = runs[0]
            width = np.asarray(first["ntk"]["half_trace"]).shape[1]
            labels = str(first["cka"]["_attrs"].get("half_blocks", "")).split(",") if first["cka"] is not None else []
            for k, ls in zip(range(width), ("-", "--", ":", "-.") * width):
                name = labels[k] if k < len(labels) and labels[k] else f"half-block {k}"
                draw_mean(ax[len(panels)], diag_mean(runs, "ntk", "half_trace", col=k, scale_by_first=True), c,
                          f"{s['label']} {name}", style=ls)
    for a, (_, ylabel, title) in zip(ax, panels):
        a.set(xlabel="step", ylabel=ylabel, title=title)
    if halves:
        ax[len(panels)].set(xlabel="step", ylabel="tr K_bs(t) / tr K_bs(0)", title="NTK trace per half-block",
                            yscale="log")
        readable_log(ax[len(panels)])
    for a in ax[:n]:
        a.legend(fontsize=6)
        a.grid(alpha=0.3)
    for a in ax[n:]:
        a.axis("off")
    fig.tight_layout()
    return fig


def make_ntk_protocols(series):
    """The two NTK protocols side by side: the logits of the logit-space probe (/ntk) and the d-wide
    output before U on the output-space probe (/ntk/output), similarity and growth ||K_t v||/||K_0 v||
    of each; seeds as mean and band. Drawn when some run has /ntk/output."""
    if not any(r["ntk_output"] is not None for s in series for r in s["runs"]):
        note("no run has /ntk/output: ntk_protocols.png skipped")
        return None
    logit = diag_series(series, "ntk", "ntk_protocols.png", ("step", "similarity", "growth"))
    output = diag_series(series, "ntk_output", "ntk_protocols.png", ("step", "similarity", "growth"))
    fig, ax = plt.subplots(2, 2, figsize=(11, 8), squeeze=False)
    labels = [s["label"] for s in series]
    cs = dict(zip(labels, colours(len(labels))))
    for row, (have, group, space) in enumerate(((logit, "ntk", "logits"), (output, "ntk_output", "output before U"))):
        for s in have:
            r0 = s["runs"][0][group]
            kind = "random" if "random" in str(r0["_attrs"].get("probe", "")) else "first"
            probe = f"{r0['_attrs'].get('samples', '?')} {kind} training samples"
            draw_mean(ax[row][0], diag_mean(s["runs"], group, "similarity"), cs[s["label"]], s["label"])
            draw_mean(ax[row][1], diag_mean(s["runs"], group, "growth"), cs[s["label"]], s["label"])
            ax[row][0].set_title(f"NTK of the {space}: similarity (probe: {probe})", fontsize=9)
            ax[row][1].set_title(f"NTK of the {space}: growth (probe: {probe})", fontsize=9)
        ax[row][0].set(xlabel="step", ylabel="cos(K_0 v, K_t v)")
        ax[row][1].set(xlabel="step", ylabel="||K_t v|| / ||K_0 v||")
        if not have:
            ax[row][0].set_title(f"NTK of the {space}: not measured", fontsize=9)
        for a in ax[row]:
            a.grid(alpha=0.3)
            if a.get_lines():
                a.legend(fontsize=7)
    fig.tight_layout()
    return fig


def make_ntk_matrix(runs):
    """K at the first and last saved snapshot of every run that saved matrices, row 0 on top, one
    colour scale per run."""
    have = [r for r in runs if r["ntk"] is not None and r["ntk"]["_matrices"]]
    for r in runs:
        if r not in have:
            note(f"run '{r['name']}' saved no NTK matrix (/ntk/K_*): left out of ntk_matrix.png")
    if not have:
        return None
    fig, ax = plt.subplots(len(have), 2, figsize=(10, 4.6 * len(have)), squeeze=False)
    for row, r in enumerate(have):
        mats = r["ntk"]["_matrices"]
        steps = [min(mats), max(mats)]
        with h5py.File(r["path"], "r") as f:
            Ks = [f[mats[s]][()] for s in steps]
        lo, hi = min(K.min() for K in Ks), max(K.max() for K in Ks)
        for col, (s, K) in enumerate(zip(steps, Ks)):
            im = ax[row][col].imshow(K, cmap="viridis", vmin=lo, vmax=hi, interpolation="nearest")
            ax[row][col].set(title=f"{r['name']}: K at step {s}", xlabel="sample*class (j*C + c)",
                             ylabel="sample*class (i*C + a)")
        fig.colorbar(im, ax=list(ax[row]), shrink=0.8)
    return fig


def make_cka(series):
    have = diag_series(series, "cka", "cka.png", ("step", "value"))
    if not have:
        return None
    names = []
    for s in have:
        for r in s["runs"]:
            labels = str(r["cka"]["_attrs"].get("half_blocks", "")).split(",")
            width = r["cka"]["value"].shape[1]
            r["_cka_labels"] = labels if len(labels) == width else [f"half-block {k}" for k in range(width)]
            names += [n for n in r["_cka_labels"] if n not in names]
    cols = min(len(names), 4)
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3 * rows), squeeze=False)
    for k, name in enumerate(names):
        a = axes[k // cols][k % cols]
        for s, c in zip(have, colours(len(have))):
            runs = [r for r in s["runs"] if name in r["_cka_labels"]]
            if runs:
                j = runs[0]["_cka_labels"].index(name)
                draw_mean(a, diag_mean(runs, "cka", "value", col=j), c, s["label"])
        a.set(title=name, xlabel="step", ylabel="CKA to step 0")
        a.grid(alpha=0.3)
        if k == 0:
            a.legend(fontsize=7)
    for k in range(len(names), rows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.tight_layout()
    return fig


def make_weights(series):
    """Cosine and norm ratio of every W against step 0, one column per run or group of seeds (the
    mean over the seeds, with a band)."""
    have = diag_series(series, "weights", "weights.png", ("step", "cosine"))
    if not have:
        return None
    fig, ax = plt.subplots(2, len(have), figsize=(5.5 * len(have), 7), squeeze=False)
    for col, s in enumerate(have):
        g = s["runs"][0]["weights"]
        names = str(g["_attrs"].get("tensors", "")).split(",")
        width = g["cosine"].shape[1]
        names = names if len(names) == width else [f"tensor {j}" for j in range(width)]
        cs = colours(width)
        for j, name in enumerate(names):
            if name.endswith("/b"):
                continue  # biases start at zero: no angle or ratio to their initial value
            draw_mean(ax[0][col], diag_mean(s["runs"], "weights", "cosine", col=j), cs[j], name, marker="o")
            if all("norm_ratio" in r["weights"] for r in s["runs"]):
                draw_mean(ax[1][col], diag_mean(s["runs"], "weights", "norm_ratio", col=j), cs[j], name, marker="o")
        ax[0][col].set(xlabel="step", ylabel="cos(W_t, W_0)", title=f"{s['label']}: weight drift")
        ax[1][col].set(xlabel="step", ylabel="||W_t|| / ||W_0||", title=f"{s['label']}: weight growth")
        for a in ax[:, col]:
            a.legend(fontsize=7, title="tensor", title_fontsize=7)
            a.grid(alpha=0.3)
        for a in ax[:, col]:
            a.title.set_fontsize(9)
    fig.tight_layout()
    return fig


def make_ggn(runs):
    have = with_group(runs, "ggn", "ggn_spectrum.png", ("step", "eigenvalues"))
    if not have:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for r, c in zip(have, colours(len(have))):
        g = r["ggn"]
        ev = np.atleast_2d(g["eigenvalues"])
        rows = [0] if ev.shape[0] == 1 else [0, ev.shape[0] - 1]
        for row in rows:
            v = ev[row][np.isfinite(ev[row]) & (ev[row] > 0)]
            if not len(v):
                continue
            first = row == 0 and len(rows) > 1
            ax.semilogy(np.arange(1, len(v) + 1), v, "--" if first else "-", color=c, lw=1.2,
                        marker="s" if first else "o", ms=5 if first else 3, mfc="none" if first else c,
                        label=f"{r['name']} step {int(g['step'][row])}{' (first)' if first else ''}")
    ax.set(xlabel="index", ylabel="eigenvalue", title="GGN spectrum (first snapshot dashed, open squares; last solid)")
    readable_log(ax)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# ---- summary and CSV -----------------------------------------------------------------------------

def last_finite(x, y):
    x, y = finite(x, y)
    return (x[-1], y[-1]) if len(y) else (np.nan, np.nan)


def at_step(g, key, step):
    if g is None or key not in g:
        return np.nan
    x, y = finite(g["step"], g[key])
    hit = np.nonzero(x == step)[0]
    return y[hit[0]] if len(hit) else np.nan


def summary_numbers(r):
    """The numbers of one summary row of a run."""
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
    cka = np.nanmin(np.asarray(c["value"], float)[-1]) if c is not None and "value" in c and len(c["value"]) else np.nan
    o = r.get("ntk_output")
    out = [last_finite(o["step"], o[k])[1] if o is not None and k in o else np.nan for k in ("similarity", "growth")]
    return [end, at_step(m, "train_loss", 0), at_step(m, "train_loss", 10), loss_end, acc, test, change] + ntk + \
        [cka] + out


def write_summary(runs, series, path):
    """summary.md: the numbers a results page quotes, one row per run, read from run.h5 as is, then
    one row per group of seeds with mean ± standard deviation over its runs. The NTK columns are the
    last snapshot: similarity, alignment and growth ||K_t||_F/||K_0||_F of the logit-space kernel
    (/ntk), similarity and growth ||K_t v||/||K_0 v|| of the output-space one (/ntk/output)."""
    head = ("| run | steps | train loss 0 / 10 / end | train acc end | test acc end | batch change median % "
            "| NTK similarity | NTK alignment | NTK growth | min CKA | output NTK similarity | output NTK growth |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    fmts = ["{:.0f}", "{:.3g}", "{:.3g}", "{:.3g}", "{:.3g}", "{:.3g}", "{:.1f}", "{:.3g}", "{:.3g}", "{:.3g}", "{:.4f}",
            "{:.3g}", "{:.3g}"]

    def fmt(v, f):
        return "–" if v is None or not np.isfinite(v) else f.format(v)

    def row(label, vals, spread=None):
        cells = [fmt(v, f) + ("" if spread is None or not np.isfinite(spread[i]) or spread[i] == 0
                              else " ± " + fmt(spread[i], f)) for i, (v, f) in enumerate(zip(vals, fmts))]
        return (f"| {label} | {cells[0]} | {cells[1]} / {cells[2]} / {cells[3]} | " + " | ".join(cells[4:]) + " |")

    for r in runs:
        lines.append(row(r["name"], summary_numbers(r)))
    for s in series:
        if s["spread"] is None:
            continue
        vals = np.array([summary_numbers(r) for r in s["runs"]], float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a column no seed has: all-NaN mean
            lines.append(row(s["label"], np.nanmean(vals, axis=0), np.nanstd(vals, axis=0)))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def safe_name(label):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "run"


def write_csvs(runs, series, folder):
    os.makedirs(folder, exist_ok=True)
    written = []
    for r in runs:
        if r["metrics"] is None:
            continue
        path = os.path.join(folder, safe_name(r["name"]) + ".csv")
        gnrev_read.write_csv({k: np.asarray(v, float) for k, v in r["metrics"].items() if not k.startswith("_")
                              and np.ndim(v) == 1}, path)
        written.append(path)
    for s in series:
        if s["spread"] is None or s["metrics"] is None:
            continue
        cols = {"step": s["metrics"]["step"], "epoch": s["metrics"]["epoch"], "n_runs": s["metrics"]["n_runs"]}
        for k in AGG_METRICS:
            if k in s["metrics"]:
                cols[f"{k}_mean"], cols[f"{k}_std"] = s["metrics"][k], s["spread"][k]
        path = os.path.join(folder, safe_name(s["label"].split(" (mean of")[0]) + ".seeds.csv")
        gnrev_read.write_csv(cols, path)
        written.append(path)
    return written


# ---- main --------------------------------------------------------------------------------------

def build(runs, aggregate=True):
    """{file name: figure} for the runs (figures without data left out)."""
    name_runs(runs)
    series = group_seeds(runs, aggregate)
    figs = {"loss.png": make_loss(series), "batch_change.png": make_batch_change(series), "ntk.png": make_ntk(series),
            "ntk_protocols.png": make_ntk_protocols(series), "ntk_matrix.png": make_ntk_matrix(runs),
            "cka.png": make_cka(series), "weights.png": make_weights(series), "ggn_spectrum.png": make_ggn(runs)}
    return {k: v for k, v in figs.items() if v is not None}, series


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="*", help="run folders (or their run.h5); default: every run under runs/")
    ap.add_argument("-o", "--out", default="report", help="output folder (default: report/)")
    ap.add_argument("--csv", action="store_true", help="also write the metrics as CSV files into OUT/csv/")
    ap.add_argument("--no-aggregate", dest="aggregate", action="store_false",
                    help="draw seeds of one deck as separate runs")
    a = ap.parse_args(argv)
    paths = a.runs or find_runs("runs")
    if not a.runs:
        if not paths:
            print(f"plot_run: error: no run folder (one holding run.h5) under {os.path.abspath('runs')}; "
                  "name the runs: plot_run.py runs/a runs/b (make report RUNS=\"runs/a runs/b\")", file=sys.stderr)
            return 2
        note(f"no run given: reporting the {len(paths)} run(s) found under runs/")
    runs = []
    for p in paths:
        try:
            runs.append(load(p))
        except (OSError, KeyError) as e:
            note(f"cannot read run '{p}': {e}: skipped")
    if not runs:
        print("plot_run: error: no run could be read", file=sys.stderr)
        return 2
    figs, series = build(runs, a.aggregate)
    os.makedirs(a.out, exist_ok=True)
    written = []
    for name, fig in figs.items():
        path = os.path.join(a.out, name)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    write_summary(runs, series, os.path.join(a.out, "summary.md"))
    written.append(os.path.join(a.out, "summary.md"))
    if a.csv:
        written += write_csvs(runs, series, os.path.join(a.out, "csv"))
    for w in written:
        print(w)
    return 0


if __name__ == "__main__":
    sys.exit(main())
