"""Rendering of a ``torchrun`` verification (``edgeplan run``, ``solve --verify``).

Formatting only: the numbers come from the ``Verification`` the executor measured.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..units import format_size
from ._json import envelope


def _fmt_bytes(n: int | None) -> str:
    return "-" if n is None else format_size(n)


def _fmt_s(t: float | None) -> str:
    if t is None:
        return "-"
    return f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.3f} s"


def run_renderable(v: Any, plan: dict, show_ops: bool) -> Group:
    """The measured-vs-predicted table of a ``torchrun.Verification`` (``plan``: the plan file's
    fields, see ``formats.plan_file.load_plan``)."""
    head = Text(f"{v.model}: {v.stages} stages, batch {v.batch}, {v.dtype}, {v.device}; "
                f"{len(v.schedule)} ops, {v.step.recomputed_forwards} recomputed forwards")
    t = Table()
    t.add_column("")
    t.add_column("predicted", justify="right")
    t.add_column("measured", justify="right")
    t.add_column("measured / predicted", justify="right")
    t.add_row("activation peak", _fmt_bytes(v.predicted_peak_bytes),
              _fmt_bytes(v.measured_peak_bytes), f"{v.peak_ratio:.4f}")
    if getattr(v, "allocator_peak_bytes", None) is not None:
        r = v.allocator_ratio
        t.add_row("  by PyTorch's allocator", _fmt_bytes(v.allocator_predicted_bytes),
                  _fmt_bytes(v.allocator_peak_bytes), "-" if r is None else f"{r:.4f}")
    if getattr(v, "rss_growth_bytes", None) is not None:
        t.add_row("  process RSS growth", "-", _fmt_bytes(v.rss_growth_bytes), "-")
    if getattr(v, "optimizer_step_bytes", None) is not None:
        pred, meas = v.optimizer_step_predicted_bytes, v.optimizer_step_bytes
        t.add_row(f"{v.optimizer} step temporaries", _fmt_bytes(pred), _fmt_bytes(meas),
                  f"{meas / pred:.4f}" if pred else "-")
    tr = v.time_ratio
    t.add_row(f"step time (host, {v.threads} thr)",
              _fmt_s(v.predicted_time_s), _fmt_s(v.measured_time_s),
              "-" if tr is None else f"{tr:.3f}")
    parts: list[Any] = [head, t]
    lines = []
    if v.plan_peak_bytes is not None or plan.get("peak_bytes") is not None:
        pk = plan.get("peak_bytes") if plan.get("peak_bytes") is not None else v.plan_peak_bytes
        lines.append(f"plan's peak (model file, temporaries included): {_fmt_bytes(pk)}")
    if v.budget_bytes is not None:
        lines.append(f"plan's activation budget: {_fmt_bytes(v.budget_bytes)} "
                     f"({'within' if v.within_budget else 'EXCEEDED'})")
    if v.step.cuda_peak_bytes is not None:
        lines.append(f"CUDA max allocated during the step: {_fmt_bytes(v.step.cuda_peak_bytes)} "
                     f"(started at {_fmt_bytes(v.step.cuda_start_bytes)})")
    lines.append("per-op bytes match the simulator exactly" if v.exact else
                 "per-op bytes differ from the simulator (see --ops)")
    verdict = ("ok: within the budget and within "
               f"{v.tolerance:.0%} of the predicted peak") if v.ok else (
        "FAILED: " + ("over the budget" if v.within_budget is False else
                      f"more than {v.tolerance:.0%} above the predicted peak"))
    lines.append(verdict)
    time_ok = v.time_ok
    if time_ok is not None:
        from ..torchrun.verify import TIME_RATIO_RANGE  # torch is there: v was measured

        rng = f"[{TIME_RATIO_RANGE[0]:g}, {TIME_RATIO_RANGE[1]:g}]"
        r = f"{tr:.2f}" if tr >= 0.1 else f"{tr:.2g}"
        lines.append(f"step time: measured / predicted {r}, within {rng}" if time_ok else
                     f"TIME PREDICTION OFF: measured / predicted {r}, outside {rng} "
                     "(not part of the verdict, which is on memory; see the note)")
    parts.append(Text("\n".join(lines)))
    if show_ops:
        o = Table(title="per op (live activation bytes)", title_justify="left")
        for c in ("#", "op", "predicted transient", "measured transient", "predicted after",
                  "measured after", "time"):
            o.add_column(c, justify="right" if c not in ("op",) else "left")
        for r in v.op_rows():
            o.add_row(str(r["index"]), f"{r['op']} {r['stage']}",
                      f"{r['predicted_transient_bytes']:,}", f"{r['measured_transient_bytes']:,}",
                      f"{r['predicted_after_bytes']:,}", f"{r['measured_after_bytes']:,}",
                      _fmt_s(r["time_s"]))
        parts.append(o)
    return Group(*parts)


def run_doc(v: Any, plan: dict, code: int, *, inputs: dict) -> dict:
    """The ``edgeplan run --json`` document."""
    d = v.to_dict(ops=True)
    d["time"]["plan_cost_s"] = plan.get("cost_s")  # the plan's (device) estimate
    d["plan"] = {"path": plan.get("path"), "budget_bytes": plan.get("budget_bytes"),
                 "peak_bytes": plan.get("peak_bytes"), "cost_s": plan.get("cost_s"),
                 "batch": plan.get("batch")}
    return envelope("run", status="ok" if code == 0 else "failed", exit_code=code,
                    inputs=inputs, data=d)
