"""test_plot_xdmf.py — the outputs of the diagnostics as users read them.

- CKA: the value test_cka computes in C (over 2 ranks) equals numpy's evaluation of the same
  definition on the matrices it wrote.
- A gnrev_mpi run with every diagnostic on, and three metrics-only runs of one deck with seeds 1-3,
  all named 't' by their decks, under runs/.
- tools/plot_run.py writes non-empty PNGs for the runs overlaid, names what it skipped, and its
  summary quotes run.h5. Without run arguments (make report) it reports every run under runs/,
  named by out_dir; the seeds get a mean ± spread row; with --csv each run's CSV equals its
  /metrics and the seeds' CSV holds numpy's mean and standard deviation over the runs.
- The figures as built: loss against step, epoch and wall time; at least two tick labels on every
  log axis; markers on the test points; the seeds as a mean with a band; every W labelled in
  weights.png; the GGN's first snapshot in its own style; ntk_matrix.png shows the first and last
  saved K.
- run.xmf is well-formed XML; every HDF DataItem names a dataset of run.h5 (relative to the
  .xmf's folder) with the declared dimensions, the topology has one more point than cells, the
  coordinates are unit cells, the NTK snapshots share one place and the CKA table lies beside it, and
  the temporal grids' times are the steps of the saved NTK matrices.
(ParaView itself opening run.xmf: tests/test_paraview.py.)
"""
import csv
import os
import subprocess
import sys
import warnings
import xml.etree.ElementTree as ET

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "py"))
import gnrun  # noqa: E402
from gnrun import check, finish, plan, require, skip  # noqa: E402

ROOT = gnrun.ROOT
BUILD = os.environ.get("BUILD", "build")
TEST_BIN = os.path.join(ROOT, BUILD, "tests")
PLOT = os.path.join(ROOT, "tools", "plot_run.py")
PYTHON = os.environ.get("PYTHON", sys.executable)


def mpirun(np_, binary, env_extra):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", **env_extra)
    return subprocess.run([gnrun.MPIRUN, *gnrun.MPIFLAGS, "-np", str(np_), binary], capture_output=True,
                          text=True, timeout=120, env=env)


def cka_numpy(X, Y):
    Xc, Yc = X - X.mean(axis=0), Y - Y.mean(axis=0)
    return np.linalg.norm(Yc.T @ Xc) ** 2 / (np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc))


def test_cka_numpy(tmp):
    p = mpirun(2, os.path.join(TEST_BIN, "test_cka"), {"CKA_TEST_DIR": tmp})
    path = os.path.join(tmp, "cka_case.bin")
    require(p.returncode == 0 and os.path.exists(path), f"test_cka wrote its case: {p.stdout[-300:]} {p.stderr[-300:]}")
    raw = np.fromfile(path, dtype=np.float64)
    n, pp, q = (int(v) for v in raw[:3])
    X = raw[3:3 + n * pp].reshape(n, pp)
    Y = raw[3 + n * pp:3 + n * pp + n * q].reshape(n, q)
    got = raw[3 + n * pp + n * q]
    want = cka_numpy(X, Y)
    check(abs(got - want) <= gnrun.tol(1e-12) * want, "cka_from_c_equals_numpy_definition", f"{got!r} vs {want!r}")


def diag_run(root):
    """A run folder with /ntk, /cka, /weights, /ggn and run.xmf."""
    out = os.path.join(root, "diag_run")
    deck = gnrun.synthetic_deck(out, method="gn", lr=0.5, steps=4,
                                diagnostics__ntk_every=2, diagnostics__ntk_samples=6,
                                diagnostics__cka_every=2, diagnostics__cka_samples=16,
                                diagnostics__weights_every=1, diagnostics__ggn_every=2,
                                diagnostics__ggn_samples=5, diagnostics__ggn_top_k=3)
    p = gnrun.run(deck, np_=2)
    ok = p.returncode == 0
    check(ok, "gnrev_mpi run with every diagnostic on", p.stdout[-800:] + p.stderr[-800:])
    return out if ok else None


def seed_runs(root):
    """Three metrics-only runs of one deck that differ in seed and out_dir only (mini-batch, 2
    epochs), and, like the diagnostics run, named 't' by their deck."""
    outs = []
    for seed in (1, 2, 3):
        out = os.path.join(root, f"seed_{seed}")
        p = gnrun.run(gnrun.synthetic_deck(out, method="sgd", lr=0.2, steps=8, run__seed=seed,
                                           data__batch_size=24, diagnostics__eval_every=3), np_=1)
        if check(p.returncode == 0, f"gnrev_mpi metrics-only run, seed {seed}", p.stderr[-800:]):
            outs.append(out)
    return outs


def is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n" and os.path.getsize(path) > 2000


def summary_rows(path):
    return [[c.strip() for c in ln.split("|")[1:-1]] for ln in open(path).read().splitlines()[2:]]


def check_summary(path, runs):
    """summary.md has one row per run, in order, whose end-of-run numbers are those of run.h5."""
    if not check(os.path.exists(path), "plot_run_writes_summary_md"):
        return
    rows = summary_rows(path)[:len(runs)]
    check(len(rows) == len(runs), "summary_has_one_row_per_run", f"{len(rows)} rows for {len(runs)} runs")
    bad = []
    for run, row in zip(runs, rows):
        with h5py.File(os.path.join(run, "run.h5"), "r") as f:
            loss = f["metrics/train_loss"][()]
            loss = loss[np.isfinite(loss)]
            want_loss = float(row[2].split("/")[-1])
            if abs(want_loss - loss[-1]) > 5e-3 * abs(loss[-1]):
                bad.append(f"{run}: end loss {row[2]} vs {loss[-1]}")
            if "ntk" in f:
                sim = f["ntk/similarity"][-1]
                if abs(float(row[6]) - sim) > 5e-3 * abs(sim):
                    bad.append(f"{run}: similarity {row[6]} vs {sim}")
            elif row[6] != "–":
                bad.append(f"{run}: similarity {row[6]} without /ntk")
    check(not bad, "summary_numbers_are_those_of_run_h5", "; ".join(bad))


def test_plots(tmp, runs):
    rep = os.path.join(tmp, "report")
    p = subprocess.run([PYTHON, PLOT, *runs, "-o", rep], capture_output=True, text=True, timeout=120)
    if not check(p.returncode == 0, "plot_run_exits_cleanly", p.stderr[-1500:]):
        return
    want = ["loss.png", "batch_change.png", "ntk.png", "ntk_matrix.png", "cka.png", "weights.png", "ggn_spectrum.png"]
    missing = [w for w in want if not (os.path.exists(os.path.join(rep, w)) and is_png(os.path.join(rep, w)))]
    check(not missing, "plot_run_writes_nonempty_pngs_for_every_figure", f"missing or empty: {missing}")
    check("has no /ntk" in p.stderr, "plot_run_notes_runs_lacking_a_group", p.stderr[-800:])
    check_summary(os.path.join(rep, "summary.md"), runs)
    p2 = subprocess.run([PYTHON, PLOT, os.path.join(tmp, "nowhere"), "-o", rep], capture_output=True, text=True)
    check(p2.returncode != 0 and "no run could be read" in p2.stderr, "plot_run_fails_clearly_without_a_readable_run",
          p2.stderr[-400:])


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return {k: np.array([float(r[i]) if r[i] != "" else np.nan for r in rows[1:]]) for i, k in enumerate(rows[0])}


def same(a, b):
    """Equal as doubles, NaN matching NaN."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def test_report_of_every_run(tmp, diag, seeds):
    """plot_run.py without run arguments, from the folder that holds runs/ (what make report does
    without RUNS), with --csv: every run is reported, named by its out_dir (their deck names are all
    't'), the seeds are aggregated, and the CSV files hold run.h5's numbers."""
    p = subprocess.run([PYTHON, PLOT, "-o", "rep_all", "--csv"], capture_output=True, text=True, timeout=120, cwd=tmp)
    if not check(p.returncode == 0, "plot_run_without_runs_exits_cleanly", p.stderr[-1500:]):
        return
    runs = [diag] + seeds
    rows = summary_rows(os.path.join(tmp, "rep_all", "summary.md"))
    names = [r[0] for r in rows]
    want = [os.path.relpath(r, tmp) for r in runs]
    check(names[:len(runs)] == want, "report_without_runs_covers_every_run_under_runs_named_by_out_dir",
          f"{names} vs {want}")
    check(len(rows) == len(runs) + 1 and "mean of 3 seeds" in rows[-1][0] and "±" in rows[-1][2],
          "summary_has_a_mean_and_spread_row_for_the_seeds", f"{rows[len(runs):]}")
    csv_dir = os.path.join(tmp, "rep_all", "csv")
    bad = []
    for r in runs:
        path = os.path.join(csv_dir, os.path.relpath(r, tmp).replace("/", "_") + ".csv")
        want_m = gnrun.metrics(r)
        got = read_csv(path) if os.path.exists(path) else {}
        if sorted(got) != sorted(want_m) or not all(same(got[k], want_m[k]) for k in want_m):
            bad.append(f"{path}: columns {sorted(got)}")
    check(not bad, "csv_of_each_run_equals_its_run_h5_metrics", "; ".join(bad))
    agg = os.path.join(csv_dir, "t.seeds.csv")
    if not check(os.path.exists(agg), "csv_of_the_seed_group_exists", f"{os.listdir(csv_dir)}"):
        return
    got = read_csv(agg)
    ms = [gnrun.metrics(r) for r in seeds]
    bad = []
    for key in ("train_loss", "test_loss", "train_acc"):
        vals = np.array([m[key] for m in ms])  # same steps in every seed run
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # test_loss: no seed measured some rows
            mean, std = np.nanmean(vals, axis=0), np.nanstd(vals, axis=0)
        if not (same(got["step"], ms[0]["step"]) and np.allclose(got[f"{key}_mean"], mean, rtol=1e-14, atol=0, equal_nan=True)
                and np.allclose(got[f"{key}_std"], std, rtol=1e-12, atol=1e-15, equal_nan=True)):
            bad.append(f"{key}: {got.get(key + '_mean', [])[:3]} vs {mean[:3]}")
    check(not bad, "seed_mean_and_std_equal_numpy_over_the_runs", "; ".join(bad))


def visible_tick_labels(ax):
    """Texts of the tick labels matplotlib draws on the y axis inside the view."""
    lo, hi = sorted(ax.get_ylim())
    out = []
    for t in ax.yaxis.get_majorticklabels() + ax.yaxis.get_minorticklabels():
        if t.get_visible() and t.get_text() and lo <= t.get_position()[1] <= hi:
            out.append(t.get_text())
    return out


def test_figures(diag, seeds):
    """The figures as objects: axes, labels, styles and the NTK picture's pixels."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import plot_run
    runs = [plot_run.load(r) for r in [diag] + seeds]
    figs, series = plot_run.build(runs)
    fig = figs.get("loss.png")
    if check(fig is not None, "loss_figure_is_built"):
        fig.canvas.draw()
        xlabels = sorted({a.get_xlabel() for a in fig.axes})
        check(xlabels == ["epoch", "step", "wall time (s)"], "loss_figure_has_step_epoch_and_wall_time_axes", f"{xlabels}")
        logs = [a for a in fig.axes if a.get_yscale() == "log"]
        few = [visible_tick_labels(a) for a in logs if len(set(visible_tick_labels(a))) < 2]
        check(logs and not few, "every_log_axis_has_at_least_two_tick_labels", f"{len(logs)} log axes, {few}")
        test_lines = [ln for a in fig.axes for ln in a.get_lines() if ln.get_label().endswith(" test")]
        check(test_lines and all(ln.get_marker() not in (None, "None", "") for ln in test_lines),
              "sparse_test_points_have_markers", f"{[(ln.get_label(), ln.get_marker()) for ln in test_lines]}")
        labels = [ln.get_label() for ln in fig.axes[0].get_lines()]
        check(any("mean of 3 seeds" in lb for lb in labels) and len(fig.axes[0].collections) >= 1,
              "seeds_are_drawn_as_a_mean_with_a_band", f"{labels}")
    fig = figs.get("weights.png")
    with h5py.File(os.path.join(diag, "run.h5"), "r") as f:
        tensors = [t for t in f["weights"].attrs["tensors"].split(",") if t.endswith("/W")]
        ksteps = sorted(int(k[2:]) for k in f["ntk"] if k.startswith("K_"))
        K0, K1 = f["ntk"][f"K_{ksteps[0]:08d}"][()], f["ntk"][f"K_{ksteps[-1]:08d}"][()]
        gsteps = f["ggn/step"][()]
    if check(fig is not None, "weights_figure_is_built"):
        legends = [sorted(t.get_text() for t in a.get_legend().get_texts()) for a in fig.axes if a.get_legend()]
        check(legends and all(lg == sorted(tensors) for lg in legends), "weights_figure_labels_every_tensor",
              f"{legends} vs {tensors}")
    fig = figs.get("ggn_spectrum.png")
    if check(fig is not None and len(gsteps) >= 2, "ggn_figure_is_built"):
        lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
        first = [ln for lb, ln in lines.items() if lb.endswith(f"step {int(gsteps[0])} (first)")]
        last = [ln for lb, ln in lines.items() if lb.endswith(f"step {int(gsteps[-1])}")]
        check(len(first) == 1 and len(last) == 1 and first[0].get_linestyle() != last[0].get_linestyle()
              and first[0].get_marker() not in (None, "None", "") and first[0].get_marker() != last[0].get_marker(),
              "ggn_first_snapshot_has_its_own_visible_style", f"{list(lines)}")
    fig = figs.get("ntk_matrix.png")
    if check(fig is not None, "ntk_matrix_figure_is_built"):
        imgs = [a.images[0].get_array() for a in fig.axes if a.images]
        check(len(imgs) == 2 and same(imgs[0], K0) and same(imgs[1], K1),
              "ntk_matrix_figure_shows_the_first_and_last_saved_matrices", f"{len(imgs)} images")
    import matplotlib.pyplot as plt
    plt.close("all")


def test_xmf(run_dir):
    xmf = os.path.join(run_dir, "run.xmf")
    if not check(os.path.exists(xmf), "run_xmf_exists"):
        return
    try:
        root = ET.parse(xmf).getroot()
    except ET.ParseError as e:
        check(False, "run_xmf_is_well_formed_xml", str(e))
        return
    check(root.tag == "Xdmf" and root.get("Version") == "2.0", "run_xmf_is_well_formed_xdmf_2")
    problems, items, times, spans = [], 0, [], {}
    with h5py.File(os.path.join(run_dir, "run.h5"), "r") as f:
        # /ntk/step is the index of snapshots, and every K_ matrix in the file is one of them.
        saved = sorted(int(s) for s in f["ntk/step"][()] if f"K_{int(s):08d}" in f["ntk"]) if "ntk" in f else []
        check(len(saved) == len(f["ntk/step"]), "every_step_in_ntk_step_has_its_matrix", f"{saved}")
        stray = [k for k in (f["ntk"] if "ntk" in f else []) if k.startswith("K_") and int(k[2:]) not in saved]
        check(not stray, "no_ntk_matrix_outside_ntk_step", f"{stray}")
        for grid in root.iter("Grid"):
            if grid.get("GridType") != "Uniform":
                continue
            topo, attr = grid.find("Topology"), grid.find("Attribute")
            item = attr.find("DataItem") if attr is not None else None
            if topo is None or item is None or topo.get("TopologyType") != "2DRectMesh":
                problems.append(f"grid {grid.get('Name')}: no 2DRectMesh topology or attribute")
                continue
            axes = grid.find("Geometry").findall("DataItem") if grid.find("Geometry") is not None else []
            coords = [np.array(a.text.split(), dtype=float) for a in axes]
            fname, _, dpath = item.text.strip().partition(":")
            if os.path.isabs(fname):
                problems.append(f"{fname} is absolute (moving the run folder would break it)")
            if os.path.realpath(os.path.join(run_dir, fname)) != os.path.realpath(os.path.join(run_dir, "run.h5")):
                problems.append(f"{fname} is not run.h5 seen from the .xmf's folder")
            dims = tuple(int(v) for v in item.get("Dimensions").split())
            pts = tuple(int(v) for v in topo.get("Dimensions").split())
            if dpath not in f:
                problems.append(f"{dpath} missing from run.h5")
            elif f[dpath].shape != dims:
                problems.append(f"{dpath}: declared {dims}, stored {f[dpath].shape}")
            if pts != tuple(d + 1 for d in dims):
                problems.append(f"{dpath}: topology {pts} is not cells + 1")
            # VXVY: x has cols + 1 unit-spaced values, y rows + 1 from 0 (one cell per entry).
            if len(coords) != 2 or [len(c) for c in coords] != [pts[1], pts[0]] or \
                    any(np.any(np.diff(c) != 1) for c in coords) or coords[1][0] != 0:
                problems.append(f"{dpath}: coordinates {[c[:3] for c in coords]} are not unit cells from y = 0")
            else:
                spans.setdefault(attr.get("Name"), set()).add((coords[0][0], coords[0][-1]))
            if attr.get("Center") != "Cell":
                problems.append(f"{dpath}: attribute not cell-centred")
            t = grid.find("Time")
            if t is not None:
                times.append(float(t.get("Value")))
            items += 1
    check(items >= 2 and not problems, "run_xmf_datasets_exist_in_run_h5_with_declared_dimensions",
          "; ".join(problems) or f"{items} items")
    # The NTK snapshots share one place; the CKA table has its own, beside it.
    ntk, cka = spans.get("ntk", set()), spans.get("cka", set())
    check(len(ntk) == 1 and len(cka) == 1 and (max(x for _, x in ntk) <= min(x for x, _ in cka)),
          "run_xmf_puts_the_ntk_series_in_one_place_and_the_cka_table_beside_it", f"ntk x {ntk}, cka x {cka}")
    check(sorted(times) == [float(s) for s in saved] and len(saved) >= 2,
          "run_xmf_time_values_are_the_steps_of_the_saved_ntk_matrices", f"{times} vs {saved}")


def main():
    plan(36)
    for name in ("test_cka", "test_diag"):
        require(os.path.exists(os.path.join(TEST_BIN, name)), f"{name} is built")
    tmp = gnrun.scratch("gnrev_plot_")
    test_cka_numpy(tmp)
    root = os.path.join(tmp, "runs")
    diag = diag_run(root)
    seeds = seed_runs(root)
    if diag and len(seeds) == 3:
        test_plots(tmp, [diag] + seeds)
        test_report_of_every_run(tmp, diag, seeds)
        test_figures(diag, seeds)
    if diag:
        test_xmf(diag)
    finish()


if __name__ == "__main__":
    main()
