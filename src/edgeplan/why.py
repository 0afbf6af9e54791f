"""Whether to train on the edge at all: the "why" of Kukreja et al., "Training on the Edge: the
why and the how" (IPDPSW 2019; arXiv 1903.03051).

The paper's abstract names the trade: training on the node avoids moving raw data (privacy,
bandwidth, radio power), but the node must then do the training, and sharing updated models may
not save communication. This module puts numbers on it for one sensor node, per day:

(a) **ship the data**: send every raw byte to a server, which trains;
(b) **train here, ship updates**: train on the device, send the model (full, or a compressed
    delta) every update period;
(c) **train here, send nothing**: local-only training.

Bytes per day and radio energy per day (bytes x the radio's energy per byte) for each, against
the device's training energy per day (iterations per day x time per iteration of the plan's
recommended checkpointing schedule x the device's training power). A verdict compares (a) with
(b) (or (c) with ``local_only``) by energy (default) or by bytes.

This is a first-order model: it never prints, every number it uses is in ``WhyResult.
assumptions``, and the radio presets are tagged (device-format.md tags: [V] vendor, [M]
measured by a third party, [C] computed, [A] assumed or recalled without re-checking).

>>> round(parse_data_rate("2 GB/day"))
23148
>>> parse_period("1 day")
86400.0
>>> parse_energy_per_byte("1 uJ/bit")
8e-06
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from . import units
from .errors import InputError

DAY_S = units.DAY_S

# --- radio presets ---------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class Radio:
    """Energy per byte sent and a typical sustained uplink, each with its source and tag."""

    name: str
    title: str
    energy_j_per_byte: float
    uplink_bytes_per_s: float
    energy_source: str
    uplink_source: str
    uncertainty: str


RADIOS: dict[str, Radio] = {
    "lte": Radio(
        name="lte", title="LTE (4G) cellular, bulk upload",
        energy_j_per_byte=(0.43839 * 5 + 1.28804) / 5e6 * 8,   # 5.57e-6 J/B
        uplink_bytes_per_s=5e6 / 8,
        energy_source=(
            "[C] from [A]: the LTE uplink power model of Huang et al., \"A Close Examination of "
            "Performance and Power Characteristics of 4G LTE Networks\" (MobiSys 2012), "
            "P = alpha_u * t_u + beta with alpha_u = 438.39 mW per Mbit/s and beta = 1288.04 mW "
            "(values recalled from the paper, not re-checked here), at 5 Mbit/s: "
            "(0.438*5 + 1.288) W / 5 Mbit/s = 0.70 uJ/bit = 5.6 uJ/B"),
        uplink_source="[A] 5 Mbit/s sustained uplink (a modest LTE cell-edge-to-mid-cell rate)",
        uncertainty=("x3 either way: signal strength and the uplink rate dominate; the tail "
                     "energy after each transfer (seconds at ~1 W) is not counted, which "
                     "matters for small, frequent uploads")),
    "wifi": Radio(
        name="wifi", title="Wi-Fi (802.11n class), bulk upload",
        energy_j_per_byte=(0.28317 * 10 + 0.13286) / 10e6 * 8,  # 2.37e-6 J/B
        uplink_bytes_per_s=10e6 / 8,
        energy_source=(
            "[C] from [A]: the Wi-Fi uplink power model of Huang et al. (MobiSys 2012, as for "
            "lte), alpha_u = 283.17 mW per Mbit/s, beta = 132.86 mW (recalled, not re-checked), "
            "at 10 Mbit/s: (0.283*10 + 0.133) W / 10 Mbit/s = 0.30 uJ/bit = 2.4 uJ/B"),
        uplink_source="[A] 10 Mbit/s sustained uplink",
        uncertainty=("x3 either way; measured on a smartphone's Wi-Fi, an embedded module "
                     "(e.g. ESP32-class) differs; association and idle listening not counted")),
    "lora": Radio(
        name="lora", title="LoRaWAN EU868, SF7/125 kHz (DR5), +17 dBm",
        energy_j_per_byte=0.087 * 3.3 / 5470 * 8 * 1.25,   # 5.2e-4 J/B
        uplink_bytes_per_s=5470 * 0.01 / 8 / 1.25,           # ~5.5 B/s on average
        energy_source=(
            "[C] from [A]: SX1276-class transceiver drawing ~87 mA at +17 dBm (PA_BOOST; "
            "datasheet figure recalled, not re-checked) at 3.3 V = 0.287 W, over the 5470 "
            "bit/s of DR5 (SF7, 125 kHz): 52 uJ/bit of payload, x1.25 for preamble, header "
            "and LoRaWAN MAC overhead: 0.52 mJ/B"),
        uplink_source=("[C] 5470 bit/s x 1% duty cycle (the EU868 sub-band limit) / 1.25 "
                       "overhead = 5.5 B/s on average, about 470 kB/day"),
        uncertainty=("x2-x4: a higher spreading factor (longer range) costs up to ~20x more "
                     "per byte at SF12; the duty-cycle cap, not energy, is usually what "
                     "rules LoRa out for raw sensor data")),
}


def find_radio(name: str) -> Radio:
    key = name.strip().lower().replace("-", "").replace("_", "")
    if key in RADIOS:
        return RADIOS[key]
    from .errors import UnknownNameError
    raise UnknownNameError.for_name("radio", name, RADIOS, key=key, n=2, cutoff=0.4,
                                    param="radio",
                                    otherwise=f"choose from {', '.join(RADIOS)}, or give a "
                                              "radio energy per byte")


# --- the analysis ----------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class Scenario:
    key: str                     # "ship-data", "ship-updates", "local-only"
    label: str
    bytes_per_day: int
    radio_j_per_day: float
    training_j_per_day: float | None   # None: unknown (no device / no plan)
    airtime_fraction: float | None     # of a day on air at the uplink rate

    @property
    def total_j_per_day(self) -> float | None:
        if self.training_j_per_day is None:
            return None if self.key != "ship-data" else self.radio_j_per_day
        return self.radio_j_per_day + self.training_j_per_day

    @property
    def fits_uplink(self) -> bool:
        return self.airtime_fraction is None or self.airtime_fraction <= 1.0

    def to_dict(self) -> dict:
        return {"scenario": self.key, "label": self.label, "bytes_per_day": self.bytes_per_day,
                "radio_j_per_day": self.radio_j_per_day,
                "training_j_per_day": self.training_j_per_day,
                "total_j_per_day": self.total_j_per_day,
                "airtime_fraction": self.airtime_fraction, "fits_uplink": self.fits_uplink}


@dataclass(frozen=True, kw_only=True)
class Training:
    """Training on the device, per day (from a plan)."""

    device: str
    model: str
    batch: int
    feasible: bool
    samples_per_day: float | None
    iterations_per_day: float | None
    time_per_iteration_s: float | None
    overhead: float | None
    power_w: float
    energy_per_iteration_j: float | None
    time_per_day_s: float | None
    energy_per_day_j: float | None
    min_device_memory_bytes: int | None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class Verdict:
    choice: str                  # "edge", "ship-data" or "local-only"
    criterion: str               # "energy", "bytes", "fit", "uplink", "time", "updates"
    line: str
    bytes_saved_fraction: float | None   # 1 - edge bytes / raw bytes
    energy_ratio: float | None           # edge energy / ship energy

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class WhyResult:
    data_bytes_per_s: float
    model_bytes: int
    update_bytes: int
    update_period_s: float
    update: str
    radio: Radio
    energy_j_per_byte: float
    uplink_bytes_per_s: float
    scenarios: tuple[Scenario, ...]
    training: Training | None
    verdict: Verdict
    assumptions: tuple[str, ...] = field(default=())

    def scenario(self, key: str) -> Scenario:
        return next(s for s in self.scenarios if s.key == key)


def analyze(*, data_bytes_per_s: float, model_bytes: int, update_period_s: float = DAY_S,
            update: str = "full", delta_ratio: float = 0.25, radio: Radio,
            energy_j_per_byte: float | None = None, uplink_bytes_per_s: float | None = None,
            model=None, device=None, batch: int | None = None, samples_per_day: float | None = None,
            sample_bytes: int | None = None, passes: float = 1.0, local_only: bool = False,
            prefer: str = "energy", memory_bytes: int | None = None) -> WhyResult:
    """Bytes and energy per day for shipping data vs training on the edge.

    ``model`` (a ``ModelSpec``) and ``device`` (a ``DeviceProfile``) give the training cost
    through ``make_plan`` (the recommended checkpointing schedule within the device's memory);
    without either, training energy is unknown and the verdict is by bytes. Samples per day are
    ``samples_per_day``, else the data rate / ``sample_bytes``, else the data rate / the model's
    input bytes per sample (its input ``x_0`` / batch). Each sample is trained on ``passes``
    times; iterations per day = passes x samples per day / batch.
    """
    if update not in ("full", "delta"):
        raise InputError(f"unknown update kind {update!r}; expected full or delta",
                         param="update")
    if prefer not in ("energy", "bytes"):
        raise InputError(f"unknown criterion {prefer!r}; expected energy or bytes",
                         param="prefer")
    if update_period_s <= 0:
        raise InputError("the update period must be positive", param="update_period")
    if not 0 < delta_ratio <= 1:
        raise InputError("the delta ratio must be above 0% and at most 100%",
                         param="delta_ratio")
    if passes <= 0:
        raise InputError("passes must be positive", param="passes")
    e_byte = radio.energy_j_per_byte if energy_j_per_byte is None else energy_j_per_byte
    uplink = radio.uplink_bytes_per_s if uplink_bytes_per_s is None else uplink_bytes_per_s
    if uplink <= 0:
        raise InputError("the uplink must be positive", param="uplink")
    notes: list[str] = []
    raw_day = round(data_bytes_per_s * DAY_S)
    update_bytes = math.ceil(model_bytes * (delta_ratio if update == "delta" else 1.0) - 1e-9)
    updates_day = round(update_bytes * DAY_S / update_period_s)

    # training on the device
    training: Training | None = None
    if model is not None and device is not None:
        training = _training(model, device, batch=batch, data_bytes_per_s=data_bytes_per_s,
                             samples_per_day=samples_per_day, sample_bytes=sample_bytes,
                             passes=passes, memory_bytes=memory_bytes, notes=notes)
    train_j = training.energy_per_day_j if training is not None and training.feasible else None

    def scen(key: str, label: str, nbytes: int, trains: bool) -> Scenario:
        return Scenario(key=key, label=label, bytes_per_day=nbytes, radio_j_per_day=nbytes * e_byte,
                        training_j_per_day=(train_j if trains else 0.0),
                        airtime_fraction=nbytes / uplink / DAY_S)

    scenarios = (
        scen("ship-data", "(a) ship the raw data", raw_day, False),
        scen("ship-updates", f"(b) train, ship {'deltas' if update == 'delta' else 'the model'}",
             updates_day, True),
        scen("local-only", "(c) train, send nothing", 0, True),
    )
    edge = scenarios[2] if local_only else scenarios[1]
    verdict = _verdict(scenarios[0], edge, training, prefer)

    # assumptions, in words
    a = notes
    a.insert(0, f"raw data: {units.format_size(raw_day)} per day "
                f"({units.format_bandwidth(data_bytes_per_s)} on average)")
    a.append(f"radio {radio.name} ({radio.title}): {_fmt_epb(e_byte)}"
             + ("" if energy_j_per_byte is None else " (--radio-energy)")
             + f"; uplink {units.format_bandwidth(uplink)}"
             + ("" if uplink_bytes_per_s is None else " (--uplink)"))
    if energy_j_per_byte is None:
        a.append(f"radio energy source: {radio.energy_source}; uncertainty: {radio.uncertainty}")
    if uplink_bytes_per_s is None:
        a.append(f"uplink source: {radio.uplink_source}")
    what = (f"a delta of {delta_ratio * 100:g}% of the model's bytes [A] (an 8-bit quantised "
            "update of fp32 weights is 25%)") if update == "delta" else \
        "the full model (its parameter bytes)"
    every = _fmt_period(update_period_s)
    a.append(f"updates: {what} = {units.format_size(update_bytes)} every "
             f"{every[2:] if every.startswith('1 ') else every}")
    a.append("energy = bytes x energy per byte for the radio; training energy = time x the "
             "device's training power (as in `edgeplan solve`), not the marginal power above "
             "idle; receiving (downloads) is not counted: in (a) the server's new model may come "
             "back down, which would add up to the bytes of (b)")
    a.append("not weighed: privacy (raw data never leaves the node in (b) and (c)), latency, "
             "server cost, accuracy of a per-node model")
    if model is not None and device is None:
        a.append("no device: training energy unknown, verdict by bytes")
    elif model is None and device is not None:
        a.append("a model size gives no stages: training energy unknown (give a model file), "
                 "verdict by bytes")
    return WhyResult(data_bytes_per_s=data_bytes_per_s, model_bytes=model_bytes,
                     update_bytes=update_bytes, update_period_s=update_period_s, update=update,
                     radio=radio, energy_j_per_byte=e_byte, uplink_bytes_per_s=uplink,
                     scenarios=scenarios,
                     training=training, verdict=verdict, assumptions=tuple(a))


def _training(model, device, *, batch, data_bytes_per_s, samples_per_day, sample_bytes, passes,
              memory_bytes, notes: list[str]) -> Training:
    from .plan import make_plan

    plan = make_plan(model, device, batch=batch, memory_bytes=memory_bytes)
    b = plan.model.batch
    if samples_per_day is None:
        if sample_bytes is None:
            sample_bytes = -(-model.input_bytes // model.batch)  # x_0 per sample, rounded up
            notes.append(f"sample size: {units.format_size(sample_bytes)} = the model's input "
                         f"per sample (its input bytes / batch {model.batch}); give "
                         "--sample-size or --samples-per-day if raw samples differ")
        if sample_bytes <= 0:
            raise InputError("the sample size must be positive", param="sample_size")
        samples_per_day = data_bytes_per_s * DAY_S / sample_bytes
        notes.append(f"samples per day: {samples_per_day:,.0f} (data rate / sample size)")
    iters = passes * samples_per_day / b
    power = device.training_power_w
    if not plan.feasible:
        notes.append(f"{model.name} does not fit for training on {device.name}: at least "
                     f"{units.format_size(plan.min_device_memory_bytes)} of device memory needed")
        return Training(device=device.name, model=model.name, batch=b, feasible=False,
                        samples_per_day=samples_per_day, iterations_per_day=iters,
                        time_per_iteration_s=None, overhead=None, power_w=power,
                        energy_per_iteration_j=None, time_per_day_s=None, energy_per_day_j=None,
                        min_device_memory_bytes=plan.min_device_memory_bytes)
    t = plan.time_s
    assert t is not None
    notes.append(f"training: {passes:g} pass(es) over each sample, batch {b}: {iters:,.1f} "
                 f"iterations per day x {units.format_time(t)} (recommended schedule on "
                 f"{device.name}, {(plan.overhead or 0) * 100:+.1f}% recompute) x {power:g} W")
    return Training(device=device.name, model=model.name, batch=b, feasible=True,
                    samples_per_day=samples_per_day, iterations_per_day=iters,
                    time_per_iteration_s=t, overhead=plan.overhead, power_w=power,
                    energy_per_iteration_j=t * power, time_per_day_s=iters * t,
                    energy_per_day_j=iters * t * power,
                    min_device_memory_bytes=plan.min_device_memory_bytes)


def _verdict(ship: Scenario, edge: Scenario, training: Training | None, prefer: str) -> Verdict:
    saved = None if ship.bytes_per_day <= 0 else 1.0 - edge.bytes_per_day / ship.bytes_per_day
    e_edge, e_ship = edge.total_j_per_day, ship.total_j_per_day
    ratio = None if e_edge is None or not e_ship else e_edge / e_ship
    bytes_txt = _fewer(saved)
    energy_txt = _energy_cmp(ratio)
    numbers = f" ({units.format_energy(e_edge)} vs {units.format_energy(e_ship)} per day)" \
        if e_edge is not None else ""

    def v(choice: str, criterion: str, line: str) -> Verdict:
        return Verdict(choice=choice, criterion=criterion, line=line,
                       bytes_saved_fraction=saved, energy_ratio=ratio)

    if training is not None and not training.feasible:
        return v("ship-data", "fit", f"ship the data: {training.model} does not fit for "
                 f"training on {training.device} (needs at least "
                 f"{units.format_size(training.min_device_memory_bytes)} of device memory)")
    if training is not None and training.time_per_day_s is not None and \
            training.time_per_day_s > DAY_S:
        return v("ship-data", "time", f"ship the data: training a day's samples takes "
                 f"{training.time_per_day_s / 3600:.1f} h of compute per day on "
                 f"{training.device}; the device cannot keep up")
    if not ship.fits_uplink and edge.fits_uplink:
        return v("edge", "uplink", f"train on the edge: the raw data needs "
                 f"{units.format_percent(ship.airtime_fraction)} of the uplink's capacity; "
                 f"{bytes_txt}"
                 + (f", {energy_txt}" if energy_txt else ""))
    if not edge.fits_uplink and not ship.fits_uplink:
        return v("local-only", "uplink", "train on the edge and send nothing (or update less "
                 "often): neither the raw data nor the model updates fit the uplink (they need "
                 f"{units.format_percent(ship.airtime_fraction)} and "
                 f"{units.format_percent(edge.airtime_fraction)} of its "
                 "capacity)")
    if not edge.fits_uplink:
        return v("ship-data", "uplink", "ship the data: the model updates alone exceed the "
                 f"uplink ({units.format_percent(edge.airtime_fraction)} of its capacity)")
    if saved is not None and saved <= 0:
        return v("ship-data", "updates", f"ship the data: the model updates "
                 f"({units.format_size(edge.bytes_per_day)}/day) are no smaller than the raw "
                 f"data ({units.format_size(ship.bytes_per_day)}/day)")
    if ratio is None or prefer == "bytes":
        why = "" if ratio is not None else " (training energy unknown: give --model FILE " \
                                           "and --device)"
        return v("edge", "bytes", f"train on the edge: {bytes_txt}"
                 + (f", {energy_txt}{numbers}" if energy_txt else why))
    if ratio <= 1.0:
        return v("edge", "energy", f"train on the edge: {bytes_txt} and {energy_txt}{numbers}")
    return v("ship-data", "energy", f"ship the data: training on the edge {bytes_txt} but "
             f"{energy_txt}{numbers}")


def _fewer(saved: float | None) -> str:
    if saved is None:
        return "no raw data to send"
    if saved >= 1.0:
        return "sends nothing"
    return f"sends {_pct(saved)} fewer bytes"


def _pct(x: float) -> str:
    p = x * 100
    return f"{p:.1f}%" if p >= 99.95 or p < 10 else f"{p:.0f}%"


def _energy_cmp(ratio: float | None) -> str:
    if ratio is None:
        return ""
    if ratio > 1.0:
        return f"costs {ratio:.3g}x more energy"
    return f"uses {_pct(1.0 - ratio)} less energy"


def _fmt_epb(e: float) -> str:
    for unit, f in (("mJ", 1e-3), ("uJ", 1e-6), ("nJ", 1e-9)):
        if e >= f:
            return f"{e / f:.3g} {unit}/B"
    return f"{e:.3g} J/B"


def _fmt_period(s: float) -> str:
    for name, f in (("year", 365 * DAY_S), ("week", 7 * DAY_S), ("day", DAY_S), ("h", 3600.0),
                    ("min", 60.0)):
        if s >= f and math.isclose(s / f, round(s / f), rel_tol=1e-9):
            n = round(s / f)
            return f"{n} {name}" + ("s" if n != 1 and name in ("year", "week", "day") else "")
    return units.format_time(s)
