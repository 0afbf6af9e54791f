"""Long fuzz run of the loaders (not part of the test suite): python tests/fuzz_loaders.py [N]

Runs the properties of tests/test_fuzz_loaders.py with N examples each (default 5000) and prints
how many inputs were tried. Any exception other than InputError fails the run.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import test_fuzz_loaders as t

N = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
count = {"n": 0}
cfg = settings(max_examples=N, deadline=None, database=None,
               suppress_health_check=list(HealthCheck))


def counted(fn):
    def run(text):
        count["n"] += 1
        fn(text)
    return run


start = time.time()
given(st.text(max_size=300))(cfg(counted(t.load_or_input_error)))()
given(t.mutate(t.TINY_MODEL))(cfg(counted(t.load_or_input_error)))()
given(t.mutate(t.TEST_DEVICE))(cfg(counted(t.test_mutated_device.hypothesis.inner_test)))()
print(f"{count['n']} inputs tried in {time.time() - start:.0f} s; no exception other than "
      "InputError")
