#!/usr/bin/python3
"""The scaling model of docs/performance.md: predicted GN and SGD step times, parallel efficiency and
memory per node of the paper's MNIST and CIFAR-10 models on np = 1 ... 1024 ranks, 64 per node.

Inputs are measured, not assumed, where this machine can measure them:
  - the per-phase times of one GN step and the SGD step at np = 1, from `bench_gn` output (make bench
    prints it; pass the file with --bench), for the MNIST model (d 784, h 8000, B 2, n 1024);
  - memory per node from `gnrev_mpi --check --plan N:R` (--gnrev), for both decks.
The network is an alpha-beta model (--alpha, --gbits) with the assumptions printed beside the table.

Model (one step, full batch of n rows spread over P ranks on N nodes of R ranks):
  products   forward, GN sweep and apply: the np = 1 times x (model size ratio) / P
  Gram       A A^T of each half-block (PDSYRK): np = 1 time x ratio / P, plus the panels broadcast
             down the p x q grid's columns, hp n 8 / q bytes per rank, the share that crosses nodes
  eigensolve 2B problems of order n solved G at a time (G = largest divisor of P <= 2B) on P/G ranks:
             the np = 1 time of one / (P/G) + n c log2(P/G) alpha (PDSYTRD's per-column collectives,
             c = --eig-msgs of them, each a tree of depth log2 of the group)
  moves      rows <-> 2-D block-cyclic (one MPI_Alltoallv per half-block each way): the features'
             n hp 8 bytes, the network's share (N-1)/N of a node's part, plus (P-1) alpha
  update     the update (GN) or gradient (SGD) summed across nodes once per node (a node's ranks each
             reduce a slice): ring allreduce of nparams 8 bytes, 2 (N-1)/N of it per node
Within a node, shared memory is assumed free beyond what np = 2 measures here.
Model size ratios (CIFAR over MNIST, same n and h): products B m (= 11.8), Gram and eigensolve B (= 3).
"""
import argparse
import math
import re
import subprocess
import sys

MODELS = {
    "MNIST": dict(d=784, C=10, B=2, h=8000, n=1024),
    "CIFAR-10": dict(d=3072, C=10, B=6, h=8000, n=1024),
}


def parse_bench(path):
    """The np = 1 and np = 2 blocks of the double build in bench_gn output."""
    blocks, cur = {}, None
    for line in open(path):
        m = re.match(r"gnrev bench \((\w+) precision.*?(\d+) ranks?,", line)
        if m:
            cur = {"precision": m.group(1), "np": int(m.group(2))}
            if m.group(1) == "double":
                blocks[cur["np"]] = cur
            continue
        if cur is None:
            continue
        m = re.match(r"\s+(SGD step|GN step|forward)\s+([0-9.]+)", line)
        if m:
            cur[m.group(1)] = float(m.group(2))
        m = re.match(r"\s+GN split on rank 0 \(s\): (.*)", line)
        if m:
            for part in m.group(1).split(","):
                k, v = part.strip().rsplit(" ", 1)
                cur[k] = float(v)
    if 1 not in blocks:
        sys.exit(f"{path}: no double-precision np = 1 block of bench_gn output")
    return blocks


def plan_memory(gnrev, deck, overrides, P, R):
    cmd = [gnrev, "--check", "--plan", f"{P}:{R}"] + sum((["-P", o] for o in overrides), []) + [deck]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    m = re.search(r"^  total per node\s+([0-9.]+) (\w+)", out, re.M)
    if not m:
        return None
    return float(m.group(1)) * {"B": 2**-30, "KiB": 2**-20, "MiB": 2**-10, "GiB": 1.0}[m.group(2)]


def nparams(mo):
    return 2 * mo["B"] * (mo["h"] + 1) * (mo["d"] // 2)


def predict(t1, mo, ref, P, R, a):
    N = max(1, math.ceil(P / R))
    alpha_of = lambda ranks: a.alpha if ranks > R else a.alpha_node  # noqa: E731
    bw = a.gbits * 1e9 / 8
    n, hp, B = mo["n"], mo["h"] + 1, mo["B"]
    s_prod = (mo["B"] * mo["d"]) / (ref["B"] * ref["d"])
    s_b = mo["B"] / ref["B"]
    net = (N - 1) / N
    t = {}
    t["products"] = (t1["forward"] + t1["sweep"] + t1["apply"]) * s_prod / P
    p = int(math.sqrt(P))
    while P % p:
        p -= 1
    # p x q grid, ranks placed row by row: a node holds whole grid rows, so the panels broadcast
    # down the grid's columns (hp n / q values per rank) are what crosses nodes.
    q = P // p
    gram_net = 2 * B * hp * n * 8 / q * R * net / bw if N > 1 else 0.0
    t["Gram"] = t1["Gram"] * s_b / P + gram_net
    G = max(g for g in range(1, min(P, 2 * B) + 1) if P % g == 0)
    Pg = P // G
    one = t1["eigensolve"] / (2 * ref["B"])
    per_problem = one / Pg + (n * a.eig_msgs * math.log2(Pg) * alpha_of(Pg) if Pg > 1 else 0.0)
    t["eigensolve"] = math.ceil(2 * B / G) * per_problem
    t["moves"] = (t1["communication"] * s_b / P if N == 1 else
                  2 * B * 2 * (n * hp * 8 * net / N / bw + (P - 1) * a.alpha))
    upd = 2 * nparams(mo) * 8 * net / bw + 2 * math.log2(N) * a.alpha if N > 1 else 0.0
    t["update"] = upd
    gn = sum(t.values())
    sgd = t1["SGD step"] * s_prod / P + upd
    return t, gn, sgd, N


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", required=True, help="bench_gn output (make bench) with a double np = 1 block")
    ap.add_argument("--gnrev", help="gnrev_mpi, for memory per node through --check --plan")
    ap.add_argument("--deck", default="input/deck.nml")
    ap.add_argument("--per-node", type=int, default=64)
    ap.add_argument("--alpha", type=float, default=1.5e-6, help="network latency, s (default 1.5 us)")
    ap.add_argument("--alpha-node", type=float, default=0.5e-6, help="latency inside a node, s")
    ap.add_argument("--gbits", type=float, default=100.0, help="network bandwidth per node, Gb/s")
    ap.add_argument("--eig-msgs", type=float, default=8.0, help="latency-bound collectives per column")
    a = ap.parse_args()
    blocks = parse_bench(a.bench)
    t1 = blocks[1]
    ref = MODELS["MNIST"]
    for name, mo in MODELS.items():
        over = [] if name == "MNIST" else [
            "data:source='synthetic'", f"data:dim={mo['d']}", f"data:classes={mo['C']}",
            f"data:synthetic_train={mo['n']}", f"data:n_train={mo['n']}", "data:n_test=256", f"model:blocks={mo['B']}",
            f"model:hidden={mo['h']}"]
        print(f"\n### {name}: d {mo['d']}, B {mo['B']}, h {mo['h']}, full batch n {mo['n']}, "
              f"{nparams(mo) / 1e6:.1f} M parameters\n")
        print("| np | nodes | products | Gram | eigensolves | moves | update across nodes | GN step | "
              "GN efficiency | SGD step | SGD efficiency | GN memory per node |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        base_gn = base_sgd = None
        P = 1
        while P <= 1024:
            R = min(P, a.per_node)
            t, gn, sgd, N = predict(t1, mo, ref, P, R, a)
            base_gn = base_gn or gn
            base_sgd = base_sgd or sgd
            mem = plan_memory(a.gnrev, a.deck, over, P, R) if a.gnrev else None
            ms = lambda x: "–" if x == 0 else f"{x * 1e3:.3g} ms" if x < 1 else f"{x:.3g} s"  # noqa: E731
            print(f"| {P} | {N} | " + " | ".join(ms(t[k]) for k in ("products", "Gram", "eigensolve", "moves", "update"))
                  + f" | **{ms(gn)}** | {100 * base_gn / (P * gn):.0f} % | {ms(sgd)} | {100 * base_sgd / (P * sgd):.0f} % | "
                  + (f"{mem:.2f} GiB" if mem is not None else "–") + " |")
            P *= 2
        if 2 in blocks and name == "MNIST":
            b2 = blocks[2]
            t, gn, sgd, _ = predict(t1, mo, ref, 2, 2, a)
            print(f"\nMeasured at np = 2 (this machine): GN step {b2['GN step']:.2f} s (model {gn:.2f} s), "
                  f"SGD step {b2['SGD step']:.2f} s (model {sgd:.2f} s); split forward {b2['forward']:.2f}, "
                  f"sweep {b2['sweep']:.2f}, Gram {b2['Gram']:.2f}, eigensolve {b2['eigensolve']:.2f}, "
                  f"apply {b2['apply']:.2f}, communication {b2['communication']:.2f} s.")


if __name__ == "__main__":
    main()
