"""Several nodes on one machine (GNREV_RANKS_PER_NODE=k makes every k consecutive ranks one node,
with its own node-shared model state): SGD, Adam and GN on 2 nodes x 2 ranks and 3 nodes x 2 agree
with one rank to 1e-10; so does a run without the shared-memory transport (--mca btl tcp,self); a
restart that changes the node layout continues the run; --check reports memory per node."""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "py"))
import numpy as np  # noqa: E402

import gnrun  # noqa: E402
from gnrun import check, final_theta, finish, plan, rel, run, synthetic_deck  # noqa: E402

plan(9)
tmp = gnrun.scratch("gnrev_nodes_")
CASES = (("sgd", 0.3, {"optim__momentum": 0.9, "data__batch_size": 40}), ("adam", 0.01, {}), ("gn", 0.5, {}))
LAYOUTS = ((4, 2), (6, 2))


def deck(out, method, lr, extra, steps=5):
    return synthetic_deck(out, method=method, lr=lr, steps=steps, diagnostics__weights_every=2, **extra)


for method, lr, extra in CASES:
    ref_dir = os.path.join(tmp, f"{method}_np1")
    p = run(deck(ref_dir, method, lr, extra), np_=1)
    ref = final_theta(ref_dir) if p.returncode == 0 else None
    worst, bad = 0.0, []
    for np_, k in LAYOUTS:
        out = os.path.join(tmp, f"{method}_np{np_}_k{k}")
        q = run(deck(out, method, lr, extra), np_=np_, env={"GNREV_RANKS_PER_NODE": str(k)})
        if q.returncode != 0 or ref is None:
            bad.append(f"np {np_} x {k}: rc {q.returncode} {q.stderr[-300:]}")
            continue
        worst = max(worst, rel(final_theta(out), ref))
    check(not bad and worst < gnrun.tol(1e-10), f"test_{method}_on_2x2_and_3x2_nodes_agrees_with_one_rank",
          f"worst rel {worst:.2e} {bad}")

# Every rank its own node (the cross-node paths with 4 nodes) and no shared-memory transport.
for label, env, mpi_args in (("4 nodes of 1 rank", {"GNREV_RANKS_PER_NODE": "1"}, ()),
                             ("btl tcp,self, 2 nodes of 2", {"GNREV_RANKS_PER_NODE": "2"}, ("--mca", "btl", "tcp,self"))):
    worst, bad = 0.0, []
    for method, lr, extra in CASES:
        ref = final_theta(os.path.join(tmp, f"{method}_np1"))
        out = os.path.join(tmp, f"{method}_{len(mpi_args)}_{env['GNREV_RANKS_PER_NODE']}")
        q = run(deck(out, method, lr, extra), np_=4, env=env, mpi_args=mpi_args)
        if q.returncode != 0:
            bad.append(f"{method}: rc {q.returncode} {q.stderr[-300:]}")
            continue
        worst = max(worst, rel(final_theta(out), ref))
    check(not bad and worst < gnrun.tol(1e-10), f"test_sgd_adam_gn_agree_with_one_rank ({label})", f"worst rel {worst:.2e} {bad}")

# A restart that changes the node layout: 3 steps on one node of 4 ranks, 2 more on 2 nodes x 2,
# against 5 steps on one rank.
for method, lr, extra in CASES[:2]:
    out = os.path.join(tmp, f"{method}_relayout")
    p1 = run(deck(out, method, lr, extra, steps=3), np_=4)
    p2 = run(deck(out, method, lr, extra, steps=5), np_=4, env={"GNREV_RANKS_PER_NODE": "2"})
    ok = p1.returncode == 0 and p2.returncode == 0 and "restart: continuing" in p2.stdout
    r = rel(final_theta(out), final_theta(os.path.join(tmp, f"{method}_np1"))) if ok else float("nan")
    check(ok and r < gnrun.tol(1e-10), f"test_{method}_restart_from_one_node_onto_two_continues_the_run",
          f"rel {r:.2e} {p2.stderr[-400:]}")

# --check at np = 4 as 2 nodes of 2: the plan counts node-shared blocks once per node.
p = run(deck(os.path.join(tmp, "check"), "adam", 0.01, {}), np_=4, args=("--check",),
        env={"GNREV_RANKS_PER_NODE": "2"})
m = re.search(r"memory for 4 ranks on 2 nodes \(2 per node", p.stdout)
sizes = dict(re.findall(r"^\s+(total once per node|total per rank)\s+([0-9.]+ \w+)$", p.stdout, re.M))
node = re.search(r"^  total per node  ([0-9.]+) (\w+)$", p.stdout, re.M)
units = {"B": 1, "KiB": 2 ** 10, "MiB": 2 ** 20, "GiB": 2 ** 30}


def parse(text):
    v, u = text.split()
    return float(v) * units[u]


ok = m and node and len(sizes) == 2
if ok:
    want = parse(sizes["total once per node"]) + 2 * parse(sizes["total per rank"])
    got = float(node.group(1)) * units[node.group(2)]
    ok = abs(got - want) <= 0.01 * want
check(p.returncode == 0 and ok, "test_check_reports_memory_per_node_as_shared_plus_ranks_per_node_times_per_rank",
      p.stdout[-1500:])

# --plan 4:2 on one rank sizes the same layout without running it: every line of its memory table
# equals the table of the real 4 ranks on 2 emulated nodes above (their "available" line aside).
q = run(deck(os.path.join(tmp, "check"), "adam", 0.01, {}), np_=1, args=("--check", "--plan", "4:2"))


def table(text):
    lines = text[text.find("memory for"):].splitlines()
    body = []
    for line in lines[1:]:
        if not line.startswith("  ") or "available" in line:
            break
        body.append(line)
    return body


real, planned = table(p.stdout), table(q.stdout)
check(q.returncode == 0 and len(real) > 8 and planned == real and "memory for 4 ranks on 2 nodes (2 per node)" in q.stdout
      and "sized for the layout --plan gave" in q.stdout and re.search(r"^plan: 4 ranks on 2 nodes of 2 ranks need about "
                                                                       r"[0-9.]+ \w+ per node", q.stdout, re.M),
      "test_check_plan_sizes_another_layout_as_running_on_it_would", "\n".join(real + ["--"] + planned) + q.stderr[-300:])
finish()
