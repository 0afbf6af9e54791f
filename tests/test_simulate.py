"""Hand-built schedules against docs/chain-model.md §3."""

import pytest

from edgeplan.chain import make_chain
from edgeplan.errors import ScheduleError
from edgeplan.schedule import Op, OpKind, Schedule
from edgeplan.simulator import simulate

Fn, Fall, B, fa, fA = OpKind.FN, OpKind.FALL, OpKind.B, OpKind.FREE_A, OpKind.FREE_ALL


def S(*ops):
    return Schedule(tuple(Op(k, i) for k, i in ops))


@pytest.fixture
def chain3():
    # x0=2; x=(3,5,1) s=(4,7,2); tmp f=(1,0,2) b=(0,3,1); tf=(1,2,3) tb=(10,20,30)
    return make_chain("c3", fwd=[1, 2, 3], bwd=[10, 20, 30], out=[3, 5, 1], saved=[4, 7, 2],
                      input_bytes=2, fwd_tmp=[1, 0, 2], bwd_tmp=[0, 3, 1])


def test_store_all_by_hand(chain3):
    t = simulate(chain3, S((Fall, 1), (Fall, 2), (Fall, 3), (B, 3), (B, 2), (B, 1)))
    # M before each op: 2 | 6 | 13 | 15 ; d_3 = 0 (loss seed)
    # Fall1: 2+4+1=7; Fall2: 6+7+0=13; Fall3: 13+2+2=17; B3: 15+x2(5)+1=21
    # after B3: 15-2-0+5(d2)=18; B2: 18+x1(3)+3=24 ; after: 18-7-5+3=9 ; B1: 9+0+0=9
    assert t.transient_bytes == (7, 13, 17, 21, 24, 9)
    assert t.peak_bytes == 24
    assert t.cost_s == 66
    assert t.recompute_time_s == 0
    assert t.memory_after_bytes[-1] == 2  # only a_0 remains


def test_checkpoint_schedule_by_hand(chain3):
    sched = S((Fn, 1), (Fn, 2), (fa, 1), (Fall, 3), (B, 3), (fa, 2), (Fall, 1), (Fall, 2), (B, 2),
              (B, 1))
    t = simulate(chain3, sched)
    # Fn1: 2+3+1=6; Fn2: 5+5+0=10; free a1 -> 7; Fall3: 7+2+2=11 -> 9; B3: 9+5+1=15 -> 12
    # free a2 -> 7 (d2=5 + a0=2); Fall1: 7+4+1=12 -> 11; Fall2: 11+7=18 -> 18; B2: 18+3+3=24
    assert t.transient_bytes[:6] == (6, 10, 7, 11, 15, 7)
    assert t.peak_bytes == 24
    assert t.cost_s == 1 + 2 + 3 + 30 + 1 + 2 + 20 + 10
    assert t.fn_ops == 2 and t.fall_ops == 3


@pytest.mark.parametrize("ops,msg", [
    ([(B, 3)], "needs A_3"),
    ([(Fall, 2)], "needs a_1"),
    ([(Fall, 1), (Fall, 2), (Fall, 3), (B, 2)], "next backward is B 3"),
    ([(Fall, 1), (Fall, 1)], "already live"),
    ([(Fn, 1), (Fn, 1)], "already live"),
    ([(fa, 1)], "not live"),
    ([(Fall, 1), (Fall, 2), (Fall, 3), (B, 3), (B, 2)], "ends before"),
    ([(Fn, 4)], "outside"),
    ([(Fall, 1), (Fall, 2), (fA, 1)], "still needed"),
    ([(Fn, 1), (Fall, 2), (fa, 1)], "still needed"),
    ([(Fall, 1), (Fall, 2), (Fall, 3), (B, 3), (B, 2), (B, 1), (Fall, 1)], "already complete"),
    ([(Fall, 1), (Fall, 2), (Fall, 3), (B, 3), (Fn, 3)], "already ran"),
])
def test_invalid_schedules(chain3, ops, msg):
    with pytest.raises(ScheduleError, match=msg):
        simulate(chain3, S(*ops))


def test_free_allowed_when_another_copy_exists(chain3):
    # a_1 live both plain and inside A_1: the plain copy may go while A_2 is live
    sched = S((Fn, 1), (Fall, 1), (Fall, 2), (fa, 1), (Fall, 3), (B, 3), (B, 2), (B, 1))
    assert simulate(chain3, sched).cost_s == 1 + 1 + 2 + 3 + 60


def test_budget_is_checked_per_op(chain3):
    sched = S((Fall, 1), (Fall, 2), (Fall, 3), (B, 3), (B, 2), (B, 1))
    simulate(chain3, sched, budget_bytes=24)
    with pytest.raises(ScheduleError, match="over the budget"):
        simulate(chain3, sched, budget_bytes=23)


def test_input_gradient_not_kept():
    c = make_chain("one", fwd=[1], bwd=[1], out=[4], saved=[6], input_bytes=100)
    t = simulate(c, S((Fall, 1), (B, 1)))
    assert t.peak_bytes == 106  # no d_0 and no d_1 (loss seed)


def test_schedule_roundtrip_and_compact():
    s = S((Fn, 1), (Fn, 2), (fa, 1), (Fall, 3), (B, 3))
    assert Schedule.from_list(s.to_list()) == s
    assert s.compact() == ["Fn 1-2", "free_a 1", "Fall 3", "B 3"]
