"""test_plot_results.py — the figures docs/results/ is made of: the diagnostics of several seeds as
one mean with a band, both NTK protocols side by side, and the Theorem 4.3 comparison.

tools/plot_run.py, on three seeds of one deck measuring the NTK in both spaces, CKA and weight
drift, and one run with the logit-space NTK only:
- ntk_protocols.png draws, for the seeds, the mean over the runs of /ntk/similarity, /ntk/growth,
  /ntk/output/similarity and /ntk/output/growth as numpy computes it from run.h5, each with a band;
  the run without /ntk/output is named in a note and left out of the output-space panels only;
- cka.png and weights.png draw the seeds' mean of /cka/value and /weights/cosine, with a band;
- summary.md quotes each run's last /ntk/output similarity and growth.
tools/plot_theorem43.py, on tractable and Moore-Penrose GN runs of a small synthetic problem at
three learning rates over one flow time:
- the output gradient it recomputes from a checkpoint gives back the training loss gnrev_mpi wrote
  for that step (-mean log p_y, p = eps + onehot);
- its largest loss gap per pair is max |L_tract - L_mp| over the steps of run.h5, as h5py reads it;
- with every half-block's features of full row rank the gaps shrink as O(lr) (fitted slope near
  1), and with the linear first block's features rank-deficient (more samples than its input
  width + 1: the tractable step is then no right inverse) they do not (slope near 0): the
  theorem's condition, seen by the script;
- a run without its Moore-Penrose partner, or an SGD run, is refused with a message.
"""
import os
import subprocess
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "py"))
import gnrun  # noqa: E402
from gnrun import check, finish, plan, require  # noqa: E402

ROOT = gnrun.ROOT
TOOLS = os.path.join(ROOT, "tools")
PYTHON = os.environ.get("PYTHON", sys.executable)
sys.path.insert(0, TOOLS)


def seed_runs(root):
    """Three seeds measuring both NTK protocols, CKA and weights, and one logit-only run."""
    outs = []
    for seed in (1, 2, 3):
        out = os.path.join(root, f"seed_{seed}")
        p = gnrun.run(gnrun.synthetic_deck(out, method="gn", lr=0.5, steps=4, run__seed=seed,
                                           diagnostics__ntk_every=2, diagnostics__ntk_samples=6,
                                           diagnostics__ntk_space="both", diagnostics__ntk_output_samples=20,
                                           diagnostics__cka_every=2, diagnostics__cka_samples=16,
                                           diagnostics__weights_every=2), np_=2)
        require(p.returncode == 0, f"gnrev_mpi seed run {seed}: {p.stderr[-600:]}")
        outs.append(out)
    single = os.path.join(root, "logits_only")
    p = gnrun.run(gnrun.synthetic_deck(single, method="sgd", lr=0.5, steps=4, run__name="sgd",
                                       diagnostics__ntk_every=2, diagnostics__ntk_samples=6), np_=1)
    require(p.returncode == 0, f"gnrev_mpi logit-only run: {p.stderr[-600:]}")
    return outs, single


def mean_std(folders, dataset, col=None):
    vals = []
    for r in folders:
        with h5py.File(os.path.join(r, "run.h5"), "r") as f:
            v = f[dataset][()]
        vals.append(v[:, col] if col is not None else v)
    vals = np.array(vals, float)
    return np.nanmean(vals, axis=0), np.nanstd(vals, axis=0)


def line(ax, label):
    found = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return found[0] if len(found) == 1 else None


def test_seed_figures(seeds, single):
    import plot_run
    import matplotlib.pyplot as plt
    runs = [plot_run.load(r) for r in seeds + [single]]
    figs, series = plot_run.build(runs)
    label = [s["label"] for s in series if s["spread"] is not None]
    require(len(label) == 1, f"the three seeds form one group: {[s['label'] for s in series]}")
    label = label[0]
    fig = figs.get("ntk_protocols.png")
    if check(fig is not None and len(fig.axes) == 4, "ntk_protocols_figure_has_four_panels"):
        bad = []
        for ax, ds in zip(fig.axes, ("ntk/similarity", "ntk/growth", "ntk/output/similarity", "ntk/output/growth")):
            ln = line(ax, label)
            mean, _ = mean_std(seeds, ds)
            if ln is None or not np.allclose(ln.get_ydata(), mean, rtol=1e-13, atol=0):
                bad.append(f"{ds}: {None if ln is None else ln.get_ydata()} vs {mean}")
            if not ax.collections:
                bad.append(f"{ds}: no band")
        check(not bad, "ntk_protocols_draws_the_seed_mean_of_each_protocol_with_a_band", "; ".join(bad))
        logit_only = [line(ax, "sgd") is not None for ax in fig.axes]
        check(logit_only == [True, True, False, False], "run_without_output_ntk_is_only_in_the_logit_panels",
              f"{logit_only}")
    fig = figs.get("cka.png")
    if check(fig is not None, "cka_figure_is_built"):
        ln = line(fig.axes[0], label)
        mean, _ = mean_std(seeds, "cka/value", col=0)
        check(ln is not None and np.allclose(ln.get_ydata(), mean, rtol=1e-13, atol=0) and fig.axes[0].collections,
              "cka_draws_the_seed_mean_with_a_band", f"{None if ln is None else ln.get_ydata()} vs {mean}")
    fig = figs.get("weights.png")
    if check(fig is not None, "weights_figure_is_built"):
        with h5py.File(os.path.join(seeds[0], "run.h5"), "r") as f:
            name = f["weights"].attrs["tensors"].split(",")[0]
        ax = [a for a in fig.axes if a.get_title().startswith(label)][0]
        ln = line(ax, name)
        mean, _ = mean_std(seeds, "weights/cosine", col=0)
        check(ln is not None and np.allclose(ln.get_ydata(), mean, rtol=1e-13, atol=0) and ax.collections,
              "weights_draws_the_seed_mean_with_a_band", f"{None if ln is None else ln.get_ydata()} vs {mean}")
    plt.close("all")


def test_summary(tmp, seeds, single):
    rep = os.path.join(tmp, "report")
    p = subprocess.run([PYTHON, os.path.join(TOOLS, "plot_run.py"), *seeds, single, "-o", rep],
                       capture_output=True, text=True, timeout=300)
    if not check(p.returncode == 0, "plot_run_exits_cleanly", p.stderr[-800:]):
        return
    check("'sgd' has no /ntk/output" in p.stderr, "plot_run_names_the_run_without_output_ntk", p.stderr[-600:])
    lines = open(os.path.join(rep, "summary.md")).read().splitlines()
    head = [c.strip() for c in lines[0].split("|")[1:-1]]
    rows = [[c.strip() for c in ln.split("|")[1:-1]] for ln in lines[2:]]
    js, jg = head.index("output NTK similarity"), head.index("output NTK growth")
    bad = []
    for run, row in zip(seeds + [single], rows):
        with h5py.File(os.path.join(run, "run.h5"), "r") as f:
            if "ntk/output" in f:
                want = (f["ntk/output/similarity"][-1], f["ntk/output/growth"][-1])
                got = (float(row[js]), float(row[jg]))
                if any(abs(g - w) > 5e-3 * abs(w) for g, w in zip(got, want)):
                    bad.append(f"{run}: {got} vs {want}")
            elif row[js] != "–" or row[jg] != "–":
                bad.append(f"{run}: {row[js]}, {row[jg]} without /ntk/output")
    check(not bad, "summary_quotes_the_output_ntk_of_run_h5", "; ".join(bad))


def theorem_runs(root, name, n_train, dim):
    """Tractable and Moore-Penrose GN at lr 0.2, 0.1, 0.05 over the flow time lr * steps = 2."""
    outs = []
    for lr, steps in ((0.2, 10), (0.1, 20), (0.05, 40)):
        for ref in (False, True):
            out = os.path.join(root, f"{name}_{lr}_{'mp' if ref else 'tr'}")
            deck = gnrun.synthetic_deck(out, method="gn", lr=lr, steps=steps, data__dim=dim,
                                        data__synthetic_train=n_train, data__synthetic_test=8,
                                        optim__gn_reference=ref, optim__rtol=1e-6, optim__atol=0.0,
                                        checkpoint__every=steps // 5, checkpoint__keep=100,
                                        diagnostics__eval_every=1000, diagnostics__batch_change=False)
            p = gnrun.run(deck, np_=1)
            require(p.returncode == 0, f"gnrev_mpi {out}: {p.stderr[-600:]}")
            outs.append(out)
    return outs


def table(path):
    rows = [[c.strip() for c in ln.split("|")[1:-1]] for ln in open(path).read().splitlines()[2:] if ln.startswith("|")]
    tail = open(path).read().split("loss gap ")[-1]
    return rows, float(tail.split(",")[0]), float(tail.split("gradient gap ")[1].split(" ")[0])


def test_theorem43(tmp):
    import gnrev_read
    import plot_theorem43
    full = theorem_runs(os.path.join(tmp, "th"), "full", n_train=12, dim=32)    # 12 <= m + 1 = 17
    short = theorem_runs(os.path.join(tmp, "th"), "short", n_train=12, dim=16)  # 12 > m + 1 = 9
    # The output gradient against the loss gnrev_mpi wrote.
    run = full[0]
    m = gnrev_read.load_metrics(run)
    ck_list = gnrev_read.checkpoints(run)
    ck = gnrev_read.load_checkpoint(ck_list[-1][1])
    X, y = gnrev_read.load_data(ck.deck, "train")
    eps = plot_theorem43.output_gradient(ck, X, y)
    loss = -np.mean(np.log(eps[np.arange(len(y)), y] + 1.0))
    want = m["train_loss"][np.nonzero(m["step"] == ck.step)[0][0]]
    check(abs(loss - want) <= gnrun.tol(1e-9) * abs(want), "output_gradient_gives_back_the_loss_gnrev_wrote",
          f"{loss!r} vs {want!r} at step {ck.step}")
    rep = os.path.join(tmp, "th_full")
    p = subprocess.run([PYTHON, os.path.join(TOOLS, "plot_theorem43.py"), *full, "-o", rep],
                       capture_output=True, text=True, timeout=300)
    if check(p.returncode == 0 and os.path.getsize(os.path.join(rep, "theorem43.png")) > 5000,
             "plot_theorem43_writes_its_figure", p.stderr[-800:]):
        rows, s_loss, s_grad = table(os.path.join(rep, "theorem43.md"))
        bad = []
        for row in rows:
            lr = row[0]
            with h5py.File(os.path.join(tmp, "th", f"full_{lr}_tr", "run.h5"), "r") as f:
                a = f["metrics/train_loss"][()]
            with h5py.File(os.path.join(tmp, "th", f"full_{lr}_mp", "run.h5"), "r") as f:
                b = f["metrics/train_loss"][()]
            gap = np.nanmax(np.abs(a - b))
            if abs(float(row[6]) - gap) > 5e-3 * gap:
                bad.append(f"lr {lr}: {row[6]} vs {gap}")
        check(len(rows) == 3 and not bad, "largest_loss_gap_is_that_of_run_h5", "; ".join(bad) or f"{rows}")
        check(0.7 <= s_loss <= 1.5 and 0.7 <= s_grad <= 1.5, "gaps_shrink_as_O_lr_with_full_rank_features",
              f"slopes {s_loss}, {s_grad}")
    rep = os.path.join(tmp, "th_short")
    p = subprocess.run([PYTHON, os.path.join(TOOLS, "plot_theorem43.py"), *short, "-o", rep],
                       capture_output=True, text=True, timeout=300)
    if check(p.returncode == 0, "plot_theorem43_runs_on_the_rank_deficient_case", p.stderr[-800:]):
        _, s_loss, s_grad = table(os.path.join(rep, "theorem43.md"))
        check(s_loss < 0.4 and s_grad < 0.4, "gaps_do_not_shrink_when_the_tractable_step_is_no_right_inverse",
              f"slopes {s_loss}, {s_grad}")
    p = subprocess.run([PYTHON, os.path.join(TOOLS, "plot_theorem43.py"), *full[:3], "-o", rep],
                       capture_output=True, text=True, timeout=300)
    check(p.returncode == 2 and "Moore-Penrose partner" in p.stderr, "an_unpaired_run_is_refused", p.stderr[-400:])
    sgd = os.path.join(tmp, "th", "sgd")
    q = gnrun.run(gnrun.synthetic_deck(sgd, method="sgd", lr=0.1, steps=2), np_=1)
    require(q.returncode == 0, f"gnrev_mpi sgd run: {q.stderr[-400:]}")
    p = subprocess.run([PYTHON, os.path.join(TOOLS, "plot_theorem43.py"), sgd, *full[:2], "-o", rep],
                       capture_output=True, text=True, timeout=300)
    check(p.returncode == 2 and "method 'sgd'" in p.stderr, "a_run_of_another_method_is_refused", p.stderr[-400:])


def main():
    plan(18)
    tmp = gnrun.scratch("gnrev_plotres_")
    seeds, single = seed_runs(os.path.join(tmp, "runs"))
    test_seed_figures(seeds, single)
    test_summary(tmp, seeds, single)
    test_theorem43(tmp)
    finish()


if __name__ == "__main__":
    main()
