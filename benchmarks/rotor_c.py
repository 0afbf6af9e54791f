"""Rotor's C dynamic program on an edgeplan model file, timed the way ``../shared/bench`` did.

Rotor (Beaumont et al., "Optimal checkpointing for heterogeneous chains", 2021) ships its C solver
in rockmate 2.0.0 (``pip install --no-deps rockmate==2.0.0``: its wheel has the compiled module,
which needs no torch). That package's own imports are broken, so this script loads the compiled
module from its directory (``--csolver``, or the ``ROTOR_CSOLVER`` environment variable) with
stub parent packages. It maps the chain onto Rotor's
``RK_Chain`` attributes with one solution per stage (docs/chain-model.md -> Rotor):

* ``cw[i]`` = x_i (the input of stage i+1; ``cw[L]`` the output, ``cw[L+1]`` = 0, the loss),
* ``cbw[i+1]`` = s_{i+1} (saved, output included; the last stage's minus the output, which
  Rotor keeps out of the budget), ``fwd_tmp`` / ``ff_fwd_tmp`` = f_i, ``bwd_tmp`` = b_i,
* ``fw`` = ``ff_fw`` = forward time, ``bw`` = backward time,

in integer units of ``--unit`` (sizes rounded up, as rockmate's ``discretize``) and times what
Rotor's Python wrapper does for one budget: ``RkTable(chain, mmax)`` (the table's allocation),
``get_opt`` (the fill, top-down, only the cells this budget needs) and ``build_sequence``; the
imports are not timed. Prints one JSON line: seconds, the optimal cost, the sequence length.

    python benchmarks/rotor_c.py ../shared/bench/cnn200.yaml --memory "210 KiB" --unit "1 KiB" \\
        --csolver /path/to/site-packages/rockmate/solvers/rk_rotor

Rotor's table is dense: ``(mmax + 1) (L + 1)^2`` doubles and ints (12 bytes each); at 1000
stages and 500 units that is 6 GB, allocated zeroed (calloc) and touched only where needed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import time
import types


def load_csolver(directory: str):
    """Import ``rockmate.solvers.rk_rotor.csolver`` from ``directory`` without rockmate's
    ``__init__`` (stub parents; the C module imports ``...csequence`` by that name)."""
    for name in ("rockmate", "rockmate.solvers", "rockmate.solvers.rk_rotor"):
        if name not in sys.modules:
            mod = types.ModuleType(name)
            mod.__path__ = []  # type: ignore[attr-defined]
            sys.modules[name] = mod
    loaded = {}
    for leaf in ("csequence", "csolver"):
        files = [f for f in os.listdir(directory) if f.startswith(leaf + ".")
                 and (f.endswith(".so") or f.endswith(".py"))]
        if not files:
            raise SystemExit(f"rotor_c: no {leaf} module in {directory}")
        name = f"rockmate.solvers.rk_rotor.{leaf}"
        spec = importlib.util.spec_from_file_location(name, os.path.join(directory, files[0]))
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        loaded[leaf] = mod
    return loaded["csolver"]


class RotorChain:
    """The attributes Rotor's C ``get_rk_chain`` reads, one solution per stage."""

    def __init__(self, chain, unit: int):
        def u(n: int) -> int:
            return int(math.ceil(n / unit))

        L = len(chain.stages)
        self.ln = L
        x = [chain.input_bytes] + [s.out_bytes for s in chain.stages]
        self.cw = [u(v) for v in x] + [0]
        self.cbw = [[0]] + [[u(s.saved_bytes)] for s in chain.stages] + [[0]]
        self.cbw[L] = [max(0, self.cbw[L][0] - self.cw[L])]
        self.fwd_tmp = [[u(s.fwd_tmp_bytes)] for s in chain.stages] + [[0]]
        self.bwd_tmp = [[u(s.bwd_tmp_bytes)] for s in chain.stages] + [[0]]
        self.ff_fwd_tmp = [u(s.fwd_tmp_bytes) for s in chain.stages] + [0]
        self.fw = [[s.fwd_time_s] for s in chain.stages] + [[0.0]]
        self.bw = [[s.bwd_time_s] for s in chain.stages] + [[0.0]]
        self.ff_fw = [s.fwd_time_s for s in chain.stages] + [0.0]
        self.nb_sol = [1] * (L + 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--memory", required=True, help='the budget, e.g. "210 KiB"')
    ap.add_argument("--unit",
                    help='one Rotor memory unit, e.g. "1 KiB" (default: budget / --slots)')
    ap.add_argument("--slots", type=int, default=500, help="units in the budget without --unit")
    ap.add_argument("--csolver", default=os.environ.get("ROTOR_CSOLVER"),
                    help="directory of rockmate's rk_rotor (csolver*.so, csequence.py)")
    a = ap.parse_args(argv)
    if not a.csolver:
        ap.error("--csolver DIR (or ROTOR_CSOLVER) is required")
    from edgeplan.formats.model_file import load_model
    from edgeplan.units import parse_size

    chain = load_model(a.model).to_chain()
    budget = parse_size(a.memory)
    unit = parse_size(a.unit) if a.unit else max(1, budget // a.slots)
    rs = load_csolver(a.csolver)
    rc = RotorChain(chain, unit)
    mmax = budget // unit
    t0 = time.perf_counter()
    table = rs.RkTable(rc, mmax)
    cost = table.get_opt(mmax)
    seq = table.build_sequence(mmax) if math.isfinite(cost) else []
    dt = time.perf_counter() - t0
    print(json.dumps({"model": os.path.basename(a.model), "stages": rc.ln, "unit_bytes": unit,
                      "mmax": mmax, "seconds": round(dt, 3), "cost_s": cost,
                      "sequence_ops": len(seq)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
