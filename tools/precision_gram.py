#!/usr/bin/python3
"""Where single precision loses accuracy in the GN step's pseudo-inverse, measured.

The step solves dTheta = A^+ T for each half-block through the n x n Gram matrix G = A A^T
(A: n x h' features, T: n x m targets), truncating eigenvalues below rtol^2 lambda_max. Forming G
squares A's condition number, so single precision is suspect exactly there. This script takes
the features of the default deck's first nonlinear half-block at initialisation (Fashion-MNIST,
relu(z C) with the model's C statistics) and compares, against a double-precision reference,
  1. everything in float32 (the single build),
  2. G formed in float32, its eigensolve in float64,
  3. G formed in float64 from the float32 features, eigensolve in float64,
and prints the relative error of dTheta for each. Usage: tools/precision_gram.py [n] [h] [rtol]."""
import gzip
import os
import sys

import numpy as np

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
h = int(sys.argv[2]) if len(sys.argv) > 2 else 8000
rtol = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-2
path = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
rng = np.random.default_rng(42)
if os.path.exists(path):
    with gzip.open(path) as f:
        X = np.frombuffer(f.read(), np.uint8, offset=16)[: n * 784].reshape(n, 784) / 255.0
else:
    X = rng.random((n, 784))
X = (X - X.mean()) / X.std()
m = X.shape[1] // 2
z = X[:, m:]                                     # the half a block's F sees
Cm = rng.standard_normal((m, h)) / np.sqrt(h)    # proj_gain 1: N(0, 1/h)
A = np.hstack([np.maximum(z @ Cm, 0), np.ones((n, 1))])
T = rng.standard_normal((n, m))


def step(G, A, T, dtype_eig):
    w, V = np.linalg.eigh(G.astype(dtype_eig))
    keep = w >= rtol * rtol * w.max()
    Z = V[:, keep] @ ((V[:, keep].T @ T.astype(dtype_eig)) / w[keep, None])
    return A.astype(Z.dtype).T @ Z, int(keep.sum())


ref, kept = step(A @ A.T, A, T, np.float64)
A32, T32 = A.astype(np.float32), T.astype(np.float32)
cases = {
    "float32 Gram, float32 eigensolve (single build)": step(A32 @ A32.T, A32, T32, np.float32),
    "float32 Gram, float64 eigensolve": step(A32 @ A32.T, A32, T32, np.float64),
    "float64 Gram of float32 features, float64 eigensolve": step(A32.astype(np.float64) @ A32.T.astype(np.float64),
                                                                 A32, T32, np.float64),
}
w = np.linalg.eigvalsh(A @ A.T)
print(f"n {n}, h' {h + 1}, rtol {rtol}: Gram condition (kept part) {w.max() / w[w >= rtol**2 * w.max()].min():.3g}, "
      f"kept {kept} of {n} in double")
for name, (d, k) in cases.items():
    err = np.linalg.norm(d - ref) / np.linalg.norm(ref)
    print(f"  {name:55s} relative error of dTheta {err:.2e} (kept {k})")
