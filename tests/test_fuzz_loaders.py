"""Fuzzing the loaders: any text gives a ModelSpec/DeviceProfile or an InputError, nothing else.

The CI run tries a few hundred inputs; tests/fuzz_loaders.py runs the same properties at scale
(see tests/README.md for the documented run).
"""

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import TEST_DEVICE, TINY_MODEL
from edgeplan.errors import InputError
from edgeplan.formats._yaml import parse_yaml_text
from edgeplan.formats.device_file import device_from_data
from edgeplan.formats.model_file import model_from_text

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def load_or_input_error(text: str) -> None:
    with contextlib.suppress(InputError):
        model_from_text(text)


def mutate(base: str):
    """Strategies that corrupt a valid file: splice random text, delete or duplicate spans."""
    pos = st.integers(0, len(base))
    return st.one_of(
        st.tuples(pos, st.text(max_size=20)).map(lambda a: base[:a[0]] + a[1] + base[a[0]:]),
        st.tuples(pos, pos).map(lambda a: base[:min(a)] + base[max(a):]),
        st.tuples(pos, pos).map(lambda a: base[:max(a)] + base[min(a):]),
        st.tuples(pos, st.sampled_from(["-", ":", "*a", "&a ", "[", "{", "\t", "nan", "1e999",
                                        "-1", "0x", "!!python/object:os.system", "%", "~"]))
        .map(lambda a: base[:a[0]] + a[1] + base[a[0]:]),
    )


@FUZZ
@given(st.text(max_size=300))
def test_random_text(text):
    load_or_input_error(text)


@FUZZ
@given(mutate(TINY_MODEL))
def test_mutated_model(text):
    load_or_input_error(text)


@FUZZ
@given(mutate(TEST_DEVICE))
def test_mutated_device(text):
    with contextlib.suppress(InputError):
        device_from_data(parse_yaml_text(text, "dev.yaml"), "dev.yaml")
