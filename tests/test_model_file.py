"""Model format 1 round trip: what ``write_model`` writes, ``model_from_text`` reads back to the
same numbers (exact integers for bytes and FLOPs, times to the written precision)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeplan.errors import InputError
from edgeplan.formats.model_file import (
    ImportedMode,
    ImportedModel,
    ImportedStage,
    model_from_text,
    write_model,
)
from edgeplan.training import parse_train

names = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                min_size=1, max_size=12).filter(lambda s: s.strip() == s and s.strip())
sizes = st.integers(0, 2**40)
flops = st.integers(0, 10**15)


@st.composite
def mode_numbers(draw, name, params, out):
    opt = st.none() | sizes
    timed = draw(st.booleans())
    saved = draw(st.none() | st.integers(out, out + 2**30))
    return name, ImportedMode(
        trainable_bytes=0 if name == "frozen" else draw(st.integers(0, params)),
        added_bytes=draw(sizes) if name.startswith("lora") else 0, saved_bytes=saved,
        fwd_tmp_bytes=draw(opt), bwd_tmp_bytes=draw(opt), fwd_flops=draw(st.none() | flops),
        bwd_flops=draw(st.none() | flops),
        fwd_time_s=draw(st.floats(1e-6, 10)) if timed else None,
        bwd_time_s=draw(st.floats(1e-6, 10)) if timed else None)


@st.composite
def stages(draw, i):
    out = draw(sizes)
    timed = draw(st.booleans())
    params = draw(sizes)
    modes = draw(st.lists(st.sampled_from(["frozen", "bias", "lora-r4", "lora-r16"]),
                          unique=True, max_size=3))
    return ImportedStage(
        modes=tuple(draw(mode_numbers(n, params, out)) for n in modes),
        name=f"s{i}_" + draw(names), fwd_flops=draw(flops), bwd_flops=draw(flops), out_bytes=out,
        saved_bytes=out + draw(sizes), fwd_tmp_bytes=draw(sizes), bwd_tmp_bytes=draw(sizes),
        param_bytes=params, param_count=draw(st.integers(0, 10**9)),
        fwd_time_s=draw(st.floats(1e-6, 10)) if timed else None,
        bwd_time_s=draw(st.floats(1e-6, 10)) if timed else None,
        tmp_estimated=draw(st.booleans()),
        comment=draw(st.none() | st.just("NOT COSTED (FLOPs below exclude them): Foo 'x'")))


@st.composite
def models(draw):
    n = draw(st.integers(1, 6))
    shaped = draw(st.booleans())
    amp = draw(st.sampled_from([None, "bf16", "fp16"]))
    return ImportedModel(
        name=draw(names), description=draw(st.text(max_size=40)),
        derivation=draw(st.text(alphabet="abc xyz:-()\n", max_size=80)),
        provenance="test", batch=draw(st.integers(1, 4096)),
        input_bytes=draw(sizes), stages=tuple(draw(stages(i)) for i in range(n)),
        input_shape=tuple(draw(st.lists(st.integers(1, 512), min_size=1, max_size=3)))
        if shaped else None,
        input_dtype=draw(st.sampled_from(["float32", "int64", "bfloat16"])) if shaped else None,
        input_comment=None if shaped else "x, mask",
        precision=amp or draw(st.sampled_from([None, "fp32", "fp16", "bf16"])),
        train=draw(st.sampled_from([None, "last:1", "bias,last:2", "none,lora:4"])),
        amp=amp,
        lora=draw(st.none() | st.tuples(
            st.lists(st.sampled_from(["query", "value", "attn.*", "c_attn"]), unique=True,
                     max_size=3).map(tuple),
            st.none() | st.sampled_from([1.0, 8.0, 16.0, 0.5]))))


@settings(max_examples=60, deadline=None)
@given(models(), st.sampled_from(["sgd", "momentum", "adam"]))
def test_write_then_read_gives_the_same_numbers(m, optimizer):
    spec = model_from_text(write_model(m, command="edgeplan import test", optimizer=optimizer))
    assert spec.name == m.name and spec.batch == m.batch and spec.optimizer == optimizer
    assert spec.precision == m.precision and spec.amp == m.amp
    want_lora = m.lora if m.lora is not None else (None, None)
    assert (spec.lora_targets, spec.lora_alpha) == want_lora
    assert [s.name for s in spec.stages] == [s.name for s in m.stages]
    for got, want in zip(spec.stages, m.stages):
        assert (got.fwd_flops, got.bwd_flops) == (want.fwd_flops, want.bwd_flops)
        assert (got.out_bytes, got.saved_bytes) == (want.out_bytes, want.saved_bytes)
        assert (got.fwd_tmp_bytes, got.bwd_tmp_bytes) == (want.fwd_tmp_bytes,
                                                          want.bwd_tmp_bytes)
        assert got.param_bytes == want.param_bytes
        assert list(got.modes) == [n for n, _ in want.modes]
        for n, wm in want.modes:
            gm = got.modes[n]
            assert (gm.trainable_bytes, gm.added_bytes) == (wm.trainable_bytes, wm.added_bytes)
            for key in ("saved_bytes", "fwd_tmp_bytes", "bwd_tmp_bytes", "fwd_flops",
                        "bwd_flops"):
                assert getattr(gm, key) == getattr(wm, key), (n, key)
            for key in ("fwd_time_s", "bwd_time_s"):
                want_t = getattr(wm, key)
                assert getattr(gm, key) == (None if want_t is None else
                                            pytest.approx(want_t, rel=1e-5))
        if want.fwd_time_s is None:
            assert got.fwd_time_s is None and got.bwd_time_s is None
        else:  # written in ms with 6 significant digits
            assert got.fwd_time_s == pytest.approx(want.fwd_time_s, rel=1e-5)
            assert got.bwd_time_s == pytest.approx(want.bwd_time_s, rel=1e-5)
    if m.input_shape is None:
        assert spec.input_bytes == m.input_bytes
    assert spec.train == (None if m.train is None else parse_train(m.train).text)


def test_unknown_optimizer_is_an_input_error():
    m = ImportedModel(name="m", description="", derivation="", provenance="", batch=1,
                      input_bytes=4, stages=(ImportedStage(name="a", fwd_flops=1, bwd_flops=2,
                                                           out_bytes=4, saved_bytes=4),))
    with pytest.raises(InputError, match="adamw"):
        write_model(m, optimizer="adamw")
