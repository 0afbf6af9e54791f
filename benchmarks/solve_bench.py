"""Benchmark of the optimal-DP table fill (``edgeplan.solvers.dp_kernel.fill_table``).

Chains (seeded, reproducible):

* ``cnn``: CNN-like heterogeneous chains: five stage groups whose activation sizes halve from one
  group to the next (+-20 % per stage), saved = 1.5-3x out, log-normal forward times, backward
  1.5-2.5x forward, forward/backward temporaries on about 30 % of the stages;
* ``homo``: homogeneous chains (fwd 1 ms, bwd 2 ms, out 8 MiB, saved 16 MiB).

For each chain the table is filled over ``--slots`` slots (default 500) spanning either the
store-all peak (``--range store-all``, default: the whole trade-off curve, what ``edgeplan``
computes for the frontier) or 40 % of it (``--range budget40``: a tight budget). Each case runs
in a fresh subprocess so that its peak RSS (``getrusage`` ``ru_maxrss``) is its own; the numba
kernel is loaded (and, on the very first run, compiled) by a tiny warm-up fill that is not timed.
Cases with at most ``--check-max`` stages (default 100) are compared cell by cell (cost and
choice) against ``solvers/reference/dp.py``, the straightforward dense kernel, which is timed
too.

    python benchmarks/solve_bench.py                 # 50..1000 stages, both chain kinds
    python benchmarks/solve_bench.py --quick         # 50 and 100 stages only
    python benchmarks/solve_bench.py --json out.json --backend numpy --sizes 50,100,200
    python benchmarks/solve_bench.py --e2e           # `edgeplan solve` end to end, shared chains

``--e2e`` times what a user waits for: the whole ``edgeplan solve MODEL --memory B --slots 500``
command (interpreter start-up, imports, the fill, the frontier, rendering) in a fresh process,
best of ``--repeats``, on the chains shared with the Rotor comparison (``../shared/bench/``,
``cnn200.yaml`` at 210 KiB and ``cnn500.yaml`` at 266 KiB), and on a 1000-stage ``cnn`` chain
of this benchmark written to a temporary model file (budget: 40 % of its store-all peak).
``--rotor DIR`` (or ``$ROTOR_CSOLVER``) also times Rotor's C solver on each chain
(``rotor_c.py``: rockmate 2.0.0's ``rockmate/solvers/rk_rotor`` directory).

Progress and ETA of long fills go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np

SIZES = (50, 100, 200, 500, 1000)
QUICK_SIZES = (50, 100)


# --------------------------------------------------------------------------------------------
# chains


def cnn_chain(L: int, seed: int = 0):
    from edgeplan.chain import make_chain

    rng = np.random.default_rng(seed)
    groups = 5
    base = 32 * 2**20
    out, saved, fwd, bwd, ft, bt = [], [], [], [], [], []
    for i in range(L):
        g = min(groups - 1, i * groups // L)
        o = int(base / 2**g * rng.uniform(0.8, 1.2))
        out.append(o)
        saved.append(int(o * rng.uniform(1.5, 3.0)))
        t = float(rng.lognormal(np.log(1e-3), 0.5))
        fwd.append(t)
        bwd.append(t * rng.uniform(1.5, 2.5))
        ft.append(int(o * rng.uniform(0.1, 0.5)) if rng.random() < 0.3 else 0)
        bt.append(int(o * rng.uniform(0.1, 1.0)) if rng.random() < 0.3 else 0)
    return make_chain(f"cnn{L}", fwd=fwd, bwd=bwd, out=out, saved=saved, input_bytes=base // 4,
                      fwd_tmp=ft, bwd_tmp=bt)


def homo_chain(L: int, seed: int = 0):
    from edgeplan.chain import make_chain

    x = 8 * 2**20
    return make_chain(f"homo{L}", fwd=[1e-3] * L, bwd=[2e-3] * L, out=[x] * L, saved=[2 * x] * L,
                      input_bytes=x)


CHAINS = {"cnn": cnn_chain, "homo": homo_chain}


def slot_problem(kind: str, L: int, slots: int, range_kind: str, seed: int = 0):
    """``(SlotChain, max_slots)`` exactly as ``solve_optimal`` discretises this chain and range."""
    from edgeplan.discretize import choose, slot_chain
    from edgeplan.solvers.base import store_all_peak_bytes

    chain = CHAINS[kind](L, seed)
    peak = store_all_peak_bytes(chain)
    range_bytes = peak if range_kind == "store-all" else int(0.4 * peak)
    disc = choose(range_bytes, slots)
    sc = slot_chain(chain, disc)
    return sc, disc.down(range_bytes) - int(sc.x[0])


# --------------------------------------------------------------------------------------------
# one case (child process)


def _rss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 if sys.platform != "darwin" else r / 2**20


def _eta_printer(label: str):
    t0 = time.perf_counter()
    last = [0.0]

    def cb(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - last[0] < 1.0 and done < total:
            return
        last[0] = now
        el = now - t0
        frac = done / total if total else 1.0
        eta = el * (1 - frac) / frac if frac > 0 else float("nan")
        sys.stderr.write(f"\r  {label}: {100 * frac:5.1f}%  {el:6.1f}s elapsed, ETA {eta:6.1f}s ")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()
    return cb


def run_case(kind: str, L: int, slots: int, range_kind: str, backend: str, check: bool) -> dict:
    from edgeplan.solvers import dp_kernel as K
    from edgeplan.solvers.reference import dp as R

    sc, M = slot_problem(kind, L, slots, range_kind)
    res = {"chain": kind, "stages": L, "slots": M + 1, "range": range_kind}
    # warm-up: load (or compile) the chosen back end on a tiny table, untimed
    tw = time.perf_counter()
    small, ms = slot_problem(kind, 6, 20, range_kind)
    K.fill_table(small, ms, backend=K._pick_backend(backend, L, M))
    res["warmup_s"] = round(time.perf_counter() - tw, 3)
    rss0 = _rss_mb()
    c0, t0 = time.process_time(), time.perf_counter()
    progress = _eta_printer(f"{kind} {L}") if L >= 500 else None
    tab = K.fill_table(sc, M, progress, backend=backend)
    res["fill_s"] = round(time.perf_counter() - t0, 3)
    res["cpu_s"] = round(time.process_time() - c0, 3)
    res["backend"] = tab.backend
    if tab.backend == "numba":
        import numba
        res["threads"] = numba.get_num_threads()
    elif tab.backend == "native":
        res["threads"] = K._threads()
    else:
        res["threads"] = 1
    res["stored_cells"] = tab.stored_cells
    res["worst_cells"] = K.table_cells(L, M)
    res["table_mb"] = round(tab.nbytes / 2**20, 1)
    res["rss_before_mb"] = round(rss0, 1)
    res["peak_rss_mb"] = round(_rss_mb(), 1)
    col = tab.column()
    fin = np.flatnonzero(np.isfinite(col))
    res["min_slots"] = int(fin[0]) if len(fin) else None
    res["cost_at_max"] = float(col[-1])
    if check:
        t1 = time.perf_counter()
        ref = R.fill_table(sc, M)
        res["ref_s"] = round(time.perf_counter() - t1, 3)
        cost, choice = tab.dense()
        iu = np.triu_indices(L + 2)
        same = (np.array_equal(cost[iu], ref.cost[iu])
                and np.array_equal(choice[iu], ref.choice[iu].astype(choice.dtype)))
        res["ref_equal"] = bool(same)
    return res


# --------------------------------------------------------------------------------------------
# driver


def machine() -> dict:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "numpy": np.__version__, "platform": platform.platform()}
    try:
        import numba
        info["numba"] = numba.__version__
    except ImportError:
        info["numba"] = None
    with contextlib.suppress(OSError):
        info["loadavg"] = [round(v, 2) for v in os.getloadavg()]
    return info


def fmt_table(rows: list[dict]) -> str:
    head = ("chain", "stages", "slots", "range", "backend", "thr", "fill s", "cpu s", "stored",
            "of worst", "table MB", "peak RSS MB", "ref s", "= ref")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['chain']} | {r['stages']} | | | | | error: {r['error']} |")
            continue
        lines.append("| " + " | ".join(str(v) for v in (
            r["chain"], r["stages"], r["slots"], r["range"], r["backend"], r["threads"],
            f"{r['fill_s']:.2f}", f"{r['cpu_s']:.2f}", f"{r['stored_cells']:,}",
            f"{r['stored_cells'] / r['worst_cells']:.0%}", r["table_mb"], r["peak_rss_mb"],
            f"{r['ref_s']:.2f}" if "ref_s" in r else "-",
            ("yes" if r["ref_equal"] else "NO") if "ref_equal" in r else "-")) + " |")
    return "\n".join(lines)


def _model_file(kind: str, L: int, path: str) -> int:
    """Write the benchmark chain ``kind``/``L`` as a model file (times and bytes as given);
    return its store-all activation peak."""
    from edgeplan.solvers.base import store_all_peak_bytes

    chain = cnn_chain(L) if kind == "cnn" else homo_chain(L)
    lines = ["format: 1", f"name: {kind}{L}", f"input: {chain.input_bytes}", "stages:"]
    for s in chain.stages:
        lines.append(f"  - {{name: {s.name}, fwd_time: {s.fwd_time_s!r} s, bwd_time: "
                     f"{s.bwd_time_s!r} s, out: {s.out_bytes}, saved: {s.saved_bytes}, "
                     f"fwd_tmp: {s.fwd_tmp_bytes}, bwd_tmp: {s.bwd_tmp_bytes}}}")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return store_all_peak_bytes(chain)


def _timed(cmd: list[str]) -> tuple[float, int, int, str, str]:
    """Run ``cmd``: (wall seconds, its own peak RSS in MiB, exit status, stdout, stderr).

    The child may write and use bytecode caches even where the environment forbids them
    (``PYTHONDONTWRITEBYTECODE``): an installed package has its ``.pyc`` files, and compiling
    edgeplan's sources on every run would add about 0.1 s that no user pays."""
    import tempfile

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        _, status, usage = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must know
        out.seek(0)
        err.seek(0)
        return dt, usage.ru_maxrss // 1024, p.returncode, out.read(), err.read()


def end_to_end(repeats: int, slots: int, rotor: str | None, rotor_repeats: int,
               sizes: tuple[int, ...] = (200, 500, 1000)) -> int:
    """``edgeplan solve`` end to end on the shared chains, and Rotor's C solver beside it
    (``rotor_c.py``) when ``rotor`` (the directory of rockmate's rk_rotor) is given; ``sizes``:
    which of the 200-, 500- and 1000-stage chains."""
    import tempfile

    here = os.path.dirname(os.path.abspath(__file__))
    shared = os.path.join(here, "..", "..", "shared", "bench")
    # (model, budget, Rotor's unit: the shared chains are in 1 KiB units; the 1000-stage chain
    # gets 500 units in its budget, the resolution of edgeplan's --slots 500)
    cases = [(os.path.join(shared, f"cnn{n}.yaml"), budget, ["--unit", "1 KiB"])
             for n, budget in ((200, "210 KiB"), (500, "266 KiB")) if n in sizes]
    if 1000 in sizes:
        big = os.path.join(tempfile.mkdtemp(), "cnn1000.yaml")
        top = _model_file("cnn", 1000, big)
        cases.append((big, f"{int(0.4 * top)} B", ["--slots", str(slots)]))
    sys.stderr.write(f"machine: {machine()}\n")
    head = f"| model | budget | slots | `edgeplan solve` (best of {repeats}) | peak RSS |"
    rule = "|---|---|---|---|---|"
    if rotor:
        head += f" Rotor C (best of {rotor_repeats}) | its peak RSS | Rotor / edgeplan |"
        rule += "---|---|---|"
    print(head)
    print(rule)
    for path, budget, unit in cases:
        if not os.path.exists(path):
            sys.stderr.write(f"skipped {path}: not found\n")
            continue
        best, rss = float("inf"), 0
        for _ in range(repeats):
            dt, mb, rc, _, err = _timed([sys.executable, "-m", "edgeplan", "solve", path,
                                         "--memory", budget, "--slots", str(slots)])
            if rc not in (0, 1):
                sys.stderr.write(err)
                return 1
            best, rss = min(best, dt), max(rss, mb)
        row = f"| {os.path.basename(path)} | {budget} | {slots} | {best:.2f} s | {rss} MB |"
        if rotor:
            r_best, r_rss = float("inf"), 0
            for _ in range(rotor_repeats):
                sys.stderr.write(f"Rotor C on {os.path.basename(path)} ...\n")
                _, mb, rc, out, err = _timed([sys.executable, os.path.join(here, "rotor_c.py"),
                                              path, "--memory", budget, *unit, "--csolver",
                                              rotor])
                if rc != 0:
                    sys.stderr.write(err)
                    return 1
                r_best = min(r_best, json.loads(out.strip().splitlines()[-1])["seconds"])
                r_rss = max(r_rss, mb)
            row += f" {r_best:.2f} s | {r_rss} MB | {r_best / best:.1f}x |"
        print(row)
        sys.stdout.flush()
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes only (50, 100)")
    ap.add_argument("--sizes", help="comma-separated stage counts (default 50,100,200,500,1000; "
                    "--e2e: of 200, 500, 1000, all by default)")
    ap.add_argument("--chains", default="cnn,homo", help="comma-separated: cnn, homo")
    ap.add_argument("--slots", type=int, default=500)
    ap.add_argument("--range", dest="range_kind", default="store-all",
                    choices=("store-all", "budget40"))
    ap.add_argument("--backend", default="auto", choices=("auto", "numpy", "numba", "native"))
    ap.add_argument("--check-max", type=int, default=100,
                    help="compare with the reference kernel up to this many stages (default 100)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON ('-': stdout)")
    ap.add_argument("--e2e", action="store_true",
                    help="time `edgeplan solve` end to end on the shared chains")
    ap.add_argument("--repeats", type=int, default=3, help="--e2e: best of N runs")
    ap.add_argument("--rotor", metavar="DIR", default=os.environ.get("ROTOR_CSOLVER"),
                    help="--e2e: also time Rotor's C solver from this directory (rockmate "
                         "2.0.0's rockmate/solvers/rk_rotor; see rotor_c.py)")
    ap.add_argument("--rotor-repeats", type=int, default=1, help="--e2e: Rotor C best of N")
    ap.add_argument("--case", help=argparse.SUPPRESS)   # child mode: kind,L
    args = ap.parse_args(argv)
    asked = tuple(int(v) for v in args.sizes.split(",")) if args.sizes else None
    if args.e2e:
        return end_to_end(args.repeats, args.slots, args.rotor, args.rotor_repeats,
                          asked or (200, 500, 1000))

    if args.case:
        kind, L = args.case.split(",")
        res = run_case(kind, int(L), args.slots, args.range_kind, args.backend,
                       int(L) <= args.check_max)
        print(json.dumps(res))
        return 0

    sizes = asked or (QUICK_SIZES if args.quick else SIZES)
    info = machine()
    sys.stderr.write(f"machine: {info}\n")
    rows = []
    for kind in args.chains.split(","):
        for L in sizes:
            sys.stderr.write(f"{kind} {L} stages x {args.slots} slots ({args.range_kind}, "
                             f"backend {args.backend}) ...\n")
            cmd = [sys.executable, os.path.abspath(__file__), "--case", f"{kind},{L}",
                   "--slots", str(args.slots), "--range", args.range_kind,
                   "--backend", args.backend, "--check-max", str(args.check_max)]
            p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)   # stderr: live progress
            if p.returncode != 0:
                rows.append({"chain": kind, "stages": L, "error": f"exit {p.returncode}"})
                continue
            r = json.loads(p.stdout.strip().splitlines()[-1])
            rows.append(r)
            sys.stderr.write(f"  fill {r['fill_s']:.2f}s (cpu {r['cpu_s']:.2f}s), peak RSS "
                             f"{r['peak_rss_mb']} MB" + (f", = reference: {r['ref_equal']}"
                                                         if "ref_equal" in r else "") + "\n")
    print(fmt_table(rows))
    if args.json:
        doc = {"date": time.strftime("%Y-%m-%d"), "machine": info, "slots": args.slots,
               "range": args.range_kind, "backend": args.backend, "results": rows}
        if args.json == "-":
            print(json.dumps(doc, indent=1))
        else:
            with open(args.json, "w") as fh:
                json.dump(doc, fh, indent=1)
    bad = [r for r in rows if "error" in r or r.get("ref_equal") is False]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
