"""Schedules: a flat tuple of ops of docs/chain-model.md §3.

>>> s = Schedule((Op(OpKind.FALL, 1), Op(OpKind.B, 1)))
>>> [o.to_dict() for o in s.ops]
[{'op': 'Fall', 'stage': 1}, {'op': 'B', 'stage': 1}]
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

from .errors import InputError


class OpKind(str, Enum):
    FN = "Fn"          # forward, nothing recorded: a_i live afterwards
    FALL = "Fall"      # forward, recording: A_i (s_i bytes, contains a_i) live afterwards
    B = "B"            # backward of stage i
    FREE_A = "free_a"  # free a_i
    FREE_ALL = "free_A"  # free A_i
    # Storage tier (docs/chain-model.md §6; docs/offload.md). Simulated only with a tier.
    W = "W"            # write a copy of a_i to storage (a_i stays live)
    R = "R"            # read a_i back from storage (a_i live afterwards; the copy stays)
    FREE_S = "free_s"  # drop the stored copy of a_i

    def __str__(self) -> str:
        return self.value


STORAGE_OPS = frozenset({OpKind.W, OpKind.R, OpKind.FREE_S})


@dataclass(frozen=True)
class Op:
    kind: OpKind
    stage: int

    def to_dict(self) -> dict:
        return {"op": self.kind.value, "stage": self.stage}

    def __str__(self) -> str:
        return f"{self.kind.value} {self.stage}"


@dataclass(frozen=True)
class Schedule:
    ops: tuple[Op, ...]

    def __len__(self) -> int:
        return len(self.ops)

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)

    def count(self, kind: OpKind) -> int:
        return sum(1 for o in self.ops if o.kind is kind)

    def forward_count(self) -> int:
        return sum(1 for o in self.ops if o.kind in (OpKind.FN, OpKind.FALL))

    def uses_storage(self) -> bool:
        """True when the schedule has storage ops (``W``, ``R``, ``free_s``)."""
        return any(o.kind in STORAGE_OPS for o in self.ops)

    def to_list(self) -> list[dict]:
        return [o.to_dict() for o in self.ops]

    @classmethod
    def from_list(cls, items: object, source: str = "schedule") -> Schedule:
        if not isinstance(items, list):
            raise InputError("expected a list of {op, stage}", source=source)
        ops = []
        names = {k.value: k for k in OpKind}
        for n, item in enumerate(items):
            where = f"schedule[{n}]"
            if not isinstance(item, dict) or set(item) != {"op", "stage"}:
                raise InputError("expected {op: ..., stage: ...}", source=source, where=where)
            kind = names.get(item["op"])
            if kind is None:
                raise InputError(f"unknown op {item['op']!r}; expected one of {', '.join(names)}",
                                 source=source, where=where)
            st = item["stage"]
            if not isinstance(st, int) or isinstance(st, bool) or st < 0:
                raise InputError(f"expected a stage number, got {st!r}", source=source, where=where)
            ops.append(Op(kind, st))
        return cls(tuple(ops))

    def compact(self) -> list[str]:
        """Readable form: runs of consecutive same-kind ops on consecutive stages are grouped.

        ``Fn 1, Fn 2, Fn 3`` -> ``Fn 1-3``; ``B 5, B 4`` -> ``B 5-4``. Frees are folded into
        their runs as well.
        """
        out: list[str] = []
        ops = self.ops
        i = 0
        while i < len(ops):
            j = i
            step = 0
            if i + 1 < len(ops) and ops[i + 1].kind is ops[i].kind and \
                    abs(ops[i + 1].stage - ops[i].stage) == 1:
                step = ops[i + 1].stage - ops[i].stage
                while j + 1 < len(ops) and ops[j + 1].kind is ops[i].kind and \
                        ops[j + 1].stage - ops[j].stage == step:
                    j += 1
            if j > i:
                out.append(f"{ops[i].kind.value} {ops[i].stage}-{ops[j].stage}")
            else:
                out.append(str(ops[i]))
            i = j + 1
        return out
