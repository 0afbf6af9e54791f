"""Shared oracle chains (reference/algorithms.md section 5.3) mapped to edgeplan's chain model.

Rotor's chains have stages 0..L-1 plus a loss stage L; rotor's x-bar_{i+1} (memory kept by a
recording forward of stage i, output included) is our ``saved`` of stage i+1 and its x_i our
``out``. The loss becomes an extra last stage with out = saved = 0 (a_L is the scalar loss).
"""

from edgeplan.chain import make_chain
from edgeplan.discretize import Discretization, slot_chain
from edgeplan.solvers.dp_kernel import fill_table


def rotor_chain(fwd, bwd, xbar, x, ftmp=None, btmp=None, loss_bwd=0):
    n = len(fwd)
    ftmp = list(ftmp or [0] * n)
    btmp = list(btmp or [0] * n)
    return make_chain("rotor", fwd=list(fwd) + [0], bwd=list(bwd) + [loss_bwd],
                      out=list(x[1:]) + [0], saved=list(xbar[1:]) + [0], input_bytes=x[0],
                      fwd_tmp=ftmp + [0], bwd_tmp=btmp + [0])


def exact_table(chain, max_bytes):
    """DP table with 1-byte slots (exact); returns f(budget_bytes) -> cost or inf."""
    tab = fill_table(slot_chain(chain, Discretization(unit_bytes=1, slots=1)), max_bytes)
    return tab, (lambda budget: tab.answer(budget - chain.input_bytes))


ROTOR_HOMOGENEOUS = rotor_chain([1] * 10, [2] * 10, [1] + [3] * 10, [1] * 11)
ROTOR_HETEROGENEOUS = rotor_chain(
    [1, 5, 3, 9, 2, 10, 8, 6, 4, 7], [2] * 10, [1, 5, 3, 1, 2, 4, 5, 6, 3, 2, 1],
    [1, 2, 1, 1, 2, 3, 2, 3, 2, 1, 1], [1, 2, 3, 4, 5, 4, 3, 2, 1, 0], [5, 4, 3, 2, 1, 2, 1, 3, 5,
                                                                        4])
_zx = [1] * 11
_zxb = [1] + [3] * 10
_zx[5] = 0
_zxb[5] = 0
ROTOR_ZERO = rotor_chain([1] * 10, [2] * 10, _zxb, _zx)
EX1 = rotor_chain([1] * 4, [1] * 4, [1] * 5, [1] * 5)
EX2 = rotor_chain([1] * 4, [2] * 4, [2] * 5, [1] * 5)
EX3 = rotor_chain([2, 1, 4, 1], [4, 2, 8, 2], [3, 6, 3, 5, 1], [3, 4, 1, 2, 1], [1, 0, 2, 0],
                  [1, 1, 2, 0], loss_bwd=1)
