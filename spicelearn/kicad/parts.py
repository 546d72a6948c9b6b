"""The part library of the learning board: pinouts, units, footprints, order codes, ratings.

Besides the parts, this module holds what the board design and its checks
share: the supply rails, the reference and the front-end resistor values
(what the BOM lists), the parts' working ranges, and the engineering notation
of values (:func:`si_value`, :func:`parse_si`).

Pin numbers follow the manufacturers' datasheets (AD5220: Analog Devices;
MCP6004: Microchip; LM339: Texas Instruments; 74HC86: the standard quad-XOR
pinout of the 74HC family). Footprints are ``Library:Footprint`` names of
KiCad 6's standard libraries, one per package style: ``dip`` (through-hole,
socketable; the lab board) or ``smd``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

from ..errors import ConfigError

__all__ = ["Pin", "PartType", "PARTS", "PACKAGES", "MAX_CONNECTOR_PINS", "CAPACITANCE_RANGE", "VDD", "GND",
           "SUPPLY_VOLTS", "VREF_RATIO", "POT_MPN", "COMPARATOR_HEADROOM", "DIFF_OHMS", "AVERAGE_OHMS", "PULLUP_OHMS",
           "connector", "part", "si_value", "parse_si"]

#: Package styles: through-hole DIP with axial/radial passives, or SOIC with 0805/1206 passives.
PACKAGES = ("dip", "smd")
#: Largest single-row pin header of KiCad's Connector_PinHeader_2.54mm library.
MAX_CONNECTOR_PINS = 40
#: Edge capacitances (farad) that exist as parts: 1 pF (C0G chips) to 1 F (supercapacitors).
CAPACITANCE_RANGE = (1e-12, 1.0)

#: Supply rails (net names); every part's ``power`` pins connect to them.
VDD, GND = "+5V", "GND"
#: The single supply (volt): the AD5220 allows at most 5.5 V, the 74HC86 6 V.
SUPPLY_VOLTS = 5.0
#: VREF = VDD * VREF_RATIO, from a 20k / 10k divider.
VREF_RATIO = 1.0 / 3.0
#: Highest comparator input voltage: the LM339's common-mode range ends this far (volt) below VCC.
COMPARATOR_HEADROOM = 1.5
#: Resistors of the front end (ohm): difference amplifiers (0.1 %), averaging pair (0.1 %), pull-ups.
DIFF_OHMS, AVERAGE_OHMS, PULLUP_OHMS = 100e3, 10e3, 10e3
#: Engineering prefixes of KiCad values, largest first.
_PREFIXES = (("G", 9), ("M", 6), ("k", 3), ("", 0), ("m", -3), ("u", -6), ("n", -9), ("p", -12), ("f", -15))


@dataclass(frozen=True)
class Pin:
    """One pin: number as printed in the datasheet, name, KiCad electrical type."""

    number: str
    name: str
    type: str


@dataclass(frozen=True)
class PartType:
    """A kind of component.

    Attributes
    ----------
    key : str
        Name used by the board builder (``"LM339"``, ``"R"``, ...).
    lib, symbol : str
        KiCad symbol library and symbol name (``libsource``).
    description : str
    prefix : str
        Reference prefix (``U``, ``R``, ``C``, ``J``).
    pins : tuple of Pin
    footprints : mapping package -> ``Library:Footprint``
    mpn : mapping package -> manufacturer part number ("" where generic)
    manufacturer : str
    units : tuple of mapping role -> pin number
        The functional units of a multi-unit part (empty for single parts).
    power : mapping rail -> pin number
        Supply pins (``"+5V"``, ``"GND"``).
    supply_ma : float
        Maximum quiescent supply current of one package at 5 V, 25 C (mA), from the datasheet.
    """

    key: str
    lib: str
    symbol: str
    description: str
    prefix: str
    pins: tuple
    footprints: MappingProxyType
    mpn: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    manufacturer: str = ""
    units: tuple = ()
    power: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    supply_ma: float = 0.0

    def footprint(self, package: str) -> str:
        return self.footprints[package]

    def pin(self, number: str) -> Pin:
        return next(p for p in self.pins if p.number == number)


def _pins(*spec) -> tuple:
    return tuple(Pin(str(i + 1), name, kind) for i, (name, kind) in enumerate(spec))


def _ro(d: dict) -> MappingProxyType:
    return MappingProxyType(dict(d))


_DIP8, _DIP14 = "Package_DIP:DIP-8_W7.62mm", "Package_DIP:DIP-14_W7.62mm"
_SO8, _SO14 = "Package_SO:SOIC-8_3.9x4.9mm_P1.27mm", "Package_SO:SOIC-14_3.9x8.7mm_P1.27mm"

# Standard quad op-amp pinout (MCP6004, LM324, TL074 share it): per unit (out, in-, in+).
_QUAD_OPAMP_UNITS = tuple(_ro({"out": o, "in-": n, "in+": p})
                          for o, n, p in (("1", "2", "3"), ("7", "6", "5"), ("8", "9", "10"), ("14", "13", "12")))

#: Order codes of the AD5220's resistance grades (the pot parts of :data:`spicelearn.model.hardware.POT_PARTS`).
POT_MPN = _ro({"AD5220-10k": _ro({"dip": "AD5220BN10", "smd": "AD5220BR10"}),
               "AD5220-50k": _ro({"dip": "AD5220BN50", "smd": "AD5220BR50"}),
               "AD5220-100k": _ro({"dip": "AD5220BN100", "smd": "AD5220BR100"})})

PARTS = _ro({p.key: p for p in (
    PartType(
        key="AD5220", lib="spicelearn", symbol="AD5220",
        description="128-position up/down digital potentiometer, R_AB grade in its value (CLK falling edge, U/D high = towards A)",
        prefix="U",
        pins=_pins(("CLK", "input"), ("U/~{D}", "input"), ("A", "passive"), ("GND", "power_in"),
                   ("W", "passive"), ("~{CS}", "input"), ("VDD", "power_in"), ("B", "passive")),
        footprints=_ro({"dip": _DIP8, "smd": _SO8}),
        mpn=_ro({"dip": "AD5220BN100", "smd": "AD5220BR100"}), manufacturer="Analog Devices",
        units=(_ro({"clk": "1", "ud": "2", "a": "3", "w": "5", "cs": "6", "b": "8"}),),
        power=_ro({VDD: "7", GND: "4"}), supply_ma=0.040,
    ),
    PartType(
        key="MCP6004", lib="Amplifier_Operational", symbol="MCP6004",
        description="Quad rail-to-rail input/output CMOS op-amp, 1.8-6 V",
        prefix="U",
        pins=_pins(("OUTA", "output"), ("-INA", "input"), ("+INA", "input"), ("VDD", "power_in"),
                   ("+INB", "input"), ("-INB", "input"), ("OUTB", "output"), ("OUTC", "output"),
                   ("-INC", "input"), ("+INC", "input"), ("VSS", "power_in"), ("+IND", "input"),
                   ("-IND", "input"), ("OUTD", "output")),
        footprints=_ro({"dip": _DIP14, "smd": _SO14}),
        mpn=_ro({"dip": "MCP6004-I/P", "smd": "MCP6004-I/SL"}), manufacturer="Microchip",
        units=_QUAD_OPAMP_UNITS, power=_ro({VDD: "4", GND: "11"}), supply_ma=4 * 0.175,
    ),
    PartType(
        key="LM339", lib="Comparator", symbol="LM339",
        description="Quad differential comparator, open-collector outputs",
        prefix="U",
        pins=_pins(("OUT2", "open_collector"), ("OUT1", "open_collector"), ("VCC", "power_in"),
                   ("-IN1", "input"), ("+IN1", "input"), ("-IN2", "input"), ("+IN2", "input"),
                   ("-IN3", "input"), ("+IN3", "input"), ("-IN4", "input"), ("+IN4", "input"),
                   ("GND", "power_in"), ("OUT4", "open_collector"), ("OUT3", "open_collector")),
        footprints=_ro({"dip": _DIP14, "smd": _SO14}),
        mpn=_ro({"dip": "LM339N", "smd": "LM339DR"}), manufacturer="Texas Instruments",
        units=tuple(_ro({"out": o, "in-": n, "in+": p})
                    for o, n, p in (("2", "4", "5"), ("1", "6", "7"), ("14", "8", "9"), ("13", "10", "11"))),
        power=_ro({VDD: "3", GND: "12"}), supply_ma=2.0,
    ),
    PartType(
        key="74HC86", lib="Logic_74xx", symbol="74HC86",
        description="Quad 2-input XOR gate",
        prefix="U",
        pins=_pins(("1A", "input"), ("1B", "input"), ("1Y", "output"), ("2A", "input"), ("2B", "input"),
                   ("2Y", "output"), ("GND", "power_in"), ("3Y", "output"), ("3A", "input"),
                   ("3B", "input"), ("4Y", "output"), ("4A", "input"), ("4B", "input"), ("VCC", "power_in")),
        footprints=_ro({"dip": _DIP14, "smd": _SO14}),
        mpn=_ro({"dip": "SN74HC86N", "smd": "SN74HC86DR"}), manufacturer="Texas Instruments",
        units=tuple(_ro({"a": a, "b": b, "y": y})
                    for a, b, y in (("1", "2", "3"), ("4", "5", "6"), ("9", "10", "8"), ("12", "13", "11"))),
        power=_ro({VDD: "14", GND: "7"}), supply_ma=0.020,
    ),
    PartType(
        key="R", lib="Device", symbol="R", description="Resistor", prefix="R",
        pins=_pins(("", "passive"), ("", "passive")),
        footprints=_ro({"dip": "Resistor_THT:R_Axial_DIN0207_L6.3mm_D2.5mm_P10.16mm_Horizontal",
                        "smd": "Resistor_SMD:R_0805_2012Metric"}),
    ),
    PartType(
        key="C", lib="Device", symbol="C", description="Ceramic capacitor (decoupling, filter)", prefix="C",
        pins=_pins(("", "passive"), ("", "passive")),
        footprints=_ro({"dip": "Capacitor_THT:C_Disc_D5.0mm_W2.5mm_P5.00mm",
                        "smd": "Capacitor_SMD:C_0805_2012Metric"}),
    ),
    PartType(
        key="C_edge", lib="Device", symbol="C", description="Edge capacitor, non-polarised film or C0G/X7R",
        prefix="C", pins=_pins(("", "passive"), ("", "passive")),
        footprints=_ro({"dip": "Capacitor_THT:C_Rect_L7.2mm_W5.5mm_P5.00mm_FKS2_FKP2_MKS2_MKP2",
                        "smd": "Capacitor_SMD:C_1206_3216Metric"}),
    ),
    PartType(
        key="CP", lib="Device", symbol="C_Polarized", description="Bulk electrolytic capacitor", prefix="C",
        pins=_pins(("+", "passive"), ("-", "passive")),
        footprints=_ro({"dip": "Capacitor_THT:CP_Radial_D5.0mm_P2.00mm", "smd": "Capacitor_SMD:CP_Elec_5x5.4"}),
    ),
)})


def connector(n_pins: int) -> PartType:
    """A single-row 2.54 mm pin header with ``n_pins`` pins (1 .. MAX_CONNECTOR_PINS)."""
    if int(n_pins) != n_pins or not 1 <= n_pins <= MAX_CONNECTOR_PINS:
        raise ConfigError(f"`connector_pins` must be an integer in 1..{MAX_CONNECTOR_PINS} "
                          f"(KiCad's largest 1-row header), got {n_pins!r}")
    fp = f"Connector_PinHeader_2.54mm:PinHeader_1x{n_pins:02d}_P2.54mm_Vertical"
    return PartType(
        key=f"Conn_01x{n_pins:02d}", lib="Connector_Generic", symbol=f"Conn_01x{n_pins:02d}",
        description=f"Pin header, 1 row, {n_pins} pins, 2.54 mm pitch", prefix="J",
        pins=tuple(Pin(str(i + 1), f"Pin_{i + 1}", "passive") for i in range(n_pins)),
        footprints=_ro({pkg: fp for pkg in PACKAGES}),
    )


def part(key: str) -> PartType:
    """Look up a part type by key (``Conn_01xNN`` for connectors)."""
    if key.startswith("Conn_01x"):
        return connector(int(key[len("Conn_01x"):]))
    try:
        return PARTS[key]
    except KeyError:
        raise ConfigError(f"unknown part {key!r}; known: {sorted(PARTS)} and Conn_01xNN") from None


def si_value(x: float) -> str:
    """Engineering notation as KiCad values write it, to 3 significant digits.

    Parameters
    ----------
    x : float
        A value in base units (ohm, farad).

    Returns
    -------
    str
        ``2.2e-6`` -> ``"2.2u"``, ``1e5`` -> ``"100k"``, ``0.5`` -> ``"500m"``. Magnitudes from
        1e-15 up to 1e15 (every real resistor and capacitor) never show an exponent; smaller
        ones fall back to ``%g``.
    """
    x = float(f"{float(x):.3g}")
    for prefix, exp in _PREFIXES:
        if abs(x) >= 10.0 ** exp * (1 - 1e-12):
            return f"{x / 10.0 ** exp:g}{prefix}"
    return f"{x:g}"


def parse_si(text: str) -> float:
    """Inverse of :func:`si_value`: ``"2.2u"`` -> 2.2e-6."""
    scale = {prefix: 10.0 ** exp for prefix, exp in _PREFIXES if prefix}
    text = text.strip()
    return float(text[:-1]) * scale[text[-1]] if text and text[-1] in scale else float(text)
