"""The authors' NTK protocol (ntk_space = 'output', ntk_probe = 'random') recomputed elsewhere: from
what a run saves (the probe's sample indices, v, the checkpoints of step 0 and step t), numpy
rebuilds the Jacobian of the d-wide output before U by central differences of its own forward
(tools/gnrev_read.py) and gets the run's similarity cos(K_0 v, K_t v) and growth |K_t v| / |K_0 v|.
Also: the random probe draws samples beyond n_train, the logit-space series keep their place, and a
restart continues the output-space series bit for bit."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "py"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import h5py  # noqa: E402
import numpy as np  # noqa: E402

import gnrev_read as gr  # noqa: E402
import gnrun  # noqa: E402
from gnrun import check, finish, plan, require, run, synthetic_deck  # noqa: E402

plan(6)
tmp = gnrun.scratch("gnrev_ntkp_")
out = os.path.join(tmp, "both")
deck = synthetic_deck(out, method="gn", lr=0.5, steps=2, data__n_train=16, data__synthetic_train=64,
                      model__hidden=6, diagnostics__ntk_every=2, diagnostics__ntk_samples=4,
                      diagnostics__ntk_space="both", diagnostics__ntk_output_samples=12,
                      diagnostics__ntk_probe="random", diagnostics__ntk_output_probe="random",
                      diagnostics__probe_seed=5)
p = run(deck, np_=2)
require(p.returncode == 0, f"the run with both NTK spaces finishes: {p.stderr[-800:]}")

with h5py.File(os.path.join(out, "run.h5"), "r") as f:
    idx = f["ntk/output/probe_index"][()]
    v = f["ntk/output/v"][()]
    sim = f["ntk/output/similarity"][()]
    growth = f["ntk/output/growth"][()]
    steps = f["ntk/output/step"][()]
    logit_steps = f["ntk/step"][()]
    logit_growth = f["ntk/growth"][()]
    logit_idx = f["ntk/probe_index"][()]
check(len(idx) == 12 and len(set(idx.tolist())) == 12 and idx.max() < 64 and idx.max() >= 16 and
      np.array_equal(logit_idx, idx[:4]),
      "test_random_probe_draws_distinct_samples_beyond_n_train_and_the_logit_probe_is_its_head", str(idx))
check(list(steps) == [0, 2] and list(logit_steps) == [0, 2] and v.shape == (12, 16) and abs(sim[0] - 1) < 1e-14 and
      abs(growth[0] - 1) < 1e-14 and abs(logit_growth[0] - 1) < 1e-14,
      "test_both_spaces_record_steps_0_and_2_with_v_saved", f"{steps} {logit_steps} {v.shape} {sim} {growth}")

ck0 = gr.load_checkpoint(os.path.join(out, "checkpoints", "step_00000000.h5"))
ck2 = gr.load_checkpoint(os.path.join(out, "checkpoints", "step_00000002.h5"))
pool_deck = {g: dict(k) for g, k in ck0.deck.items()}
pool_deck["data"]["n_train"] = 0
X, _ = gr.load_data(pool_deck, "train")
Xp = np.asarray(X, dtype=np.float64)[idx]


def set_theta(ck, flat):
    """The checkpoint's blocks with the flat parameters (gnrev's order: per block F then G, [W; b])."""
    off = 0
    for blk in ck.blocks:
        for half in ("F", "G"):
            w = blk[half]["W"]
            blk[half]["W"] = flat[off:off + w.size].reshape(w.shape)
            off += w.size
            if blk[half]["b"] is not None:
                n = blk[half]["b"].size
                blk[half]["b"] = flat[off:off + n].copy()
                off += n
    return ck


def kv(ck, theta):
    """K v for the state X_B on the probe, K = J J^T, J by central differences of numpy's forward."""
    h = 1e-6
    J = np.empty((Xp.size, theta.size))
    for k in range(theta.size):
        tp, tm = theta.copy(), theta.copy()
        tp[k] += h
        tm[k] -= h
        _, sp = gr.forward(set_theta(ck, tp), Xp, return_state=True)
        _, sm = gr.forward(set_theta(ck, tm), Xp, return_state=True)
        J[:, k] = (sp - sm).ravel() / (2 * h)
    set_theta(ck, theta)
    return J @ (J.T @ v.ravel())


theta0, theta2 = ck0.theta(), ck2.theta()
check(np.array_equal(ck2.theta0, theta0), "test_step_2_checkpoint_carries_the_step_0_parameters")
k0, k2 = kv(ck0, theta0), kv(ck2, theta2)
want_sim = float(k0 @ k2 / (np.linalg.norm(k0) * np.linalg.norm(k2)))
want_growth = float(np.linalg.norm(k2) / np.linalg.norm(k0))
check(abs(sim[1] - want_sim) < 1e-7 and abs(growth[1] - want_growth) < 1e-7 * want_growth and abs(1 - want_sim) > 1e-4,
      "test_similarity_and_growth_recomputed_from_probe_index_v_and_checkpoints",
      f"run {sim[1]!r} {growth[1]!r}, numpy {want_sim!r} {want_growth!r}")

# A restart continues the output-space series as the uninterrupted run has them.
part = os.path.join(tmp, "part")
deck_part = dict(deck, run=dict(deck["run"], out_dir=part, max_steps=1))
p1 = run(deck_part, np_=2)
deck_part["run"]["max_steps"] = 2
p2 = run(deck_part, np_=2)
ok = p1.returncode == 0 and p2.returncode == 0 and "restart: continuing" in p2.stdout
with h5py.File(os.path.join(part, "run.h5"), "r") as f:
    same = all(np.array_equal(f[f"ntk/output/{k}"][()], v2) for k, v2 in
               (("similarity", sim), ("growth", growth), ("step", steps), ("probe_index", idx), ("v", v)))
check(ok and same, "test_restart_continues_the_output_space_series_bit_for_bit", p2.stderr[-400:])

# Output space alone: no logit-space series or matrices.
solo = os.path.join(tmp, "solo")
p = run(dict(deck, run=dict(deck["run"], out_dir=solo), diagnostics=dict(deck["diagnostics"], ntk_space="output")),
        np_=1)
with h5py.File(os.path.join(solo, "run.h5"), "r") as f:
    only = "ntk/output/similarity" in f and "ntk/step" not in f and not any(k.startswith("K_") for k in f["ntk"])
    same_np1 = p.returncode == 0 and np.allclose(f["ntk/output/similarity"][()], sim, rtol=0, atol=gnrun.tol(1e-12))
check(p.returncode == 0 and only and same_np1, "test_output_space_alone_writes_no_logit_matrices_and_agrees_on_1_rank",
      p.stderr[-400:])
finish()
