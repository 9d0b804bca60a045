"""Settings declared once: name, default, static or traced, allowed values, one line of help.

An algorithm's ``Spec`` is the single declaration of everything a user can set. From it
come the command line flags and their ``--help``, ``purejaxpg list ALGO``, the validation
of every value on every path (CLI, Python API, each point of a sweep, a resumed run), and
the split into

* the static config: a frozen, hashable dataclass (``Spec.config_class``) of the settings
  that fix array shapes or the program's structure (``num_envs``, ``hidden``, ``surrogate``).
  Configurations that differ in one of them compile to different programs;
* the traced hyperparameters: a dict of floats (``lr``, ``gamma``, ``clip_eps``, ...) that
  enter the program as arrays, so a sweep over them compiles once.

``Spec.resolve(overrides)`` does all of it and raises ``ValueError`` with one line on bad
input, before anything is built or compiled::

    SPEC = Spec("ppo", (
        static("update_epochs", 4, "passes over each batch", bounds="[1, inf)"),
        traced("clip_eps", 0.2, "clip range of the probability ratio", bounds="(0, 1]"),
        traced("target_kl", 0.01, "KL the penalty aims at", bounds="(0, inf)", when={"surrogate": "kl"}),
    ))
    config, hparams = SPEC.resolve({"clip_eps": "0.1"})
"""
from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

KINDS = (bool, int, float, str, tuple)
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class Interval:
    """A numeric range such as ``(0, 1]`` or ``[1, inf)``."""

    low: float
    high: float
    low_open: bool
    high_open: bool

    @classmethod
    def parse(cls, text: str) -> "Interval":
        text = text.strip()
        if len(text) < 5 or text[0] not in "([" or text[-1] not in ")]" or "," not in text:
            raise ValueError(f"bad interval {text!r}; write it like (0, 1] or [1, inf)")
        low, high = (float(v) for v in text[1:-1].split(","))
        return cls(low, high, text[0] == "(", text[-1] == ")")

    def __contains__(self, v) -> bool:
        above = v > self.low if self.low_open else v >= self.low
        below = v < self.high if self.high_open else v <= self.high
        return above and below

    def __str__(self) -> str:
        def num(x):
            return "inf" if x == math.inf else "-inf" if x == -math.inf else f"{x:g}"
        return f"{'(' if self.low_open else '['}{num(self.low)}, {num(self.high)}{')' if self.high_open else ']'}"


@dataclass(frozen=True)
class Setting:
    """One setting. ``default`` may be a function of the resolved static config (for
    defaults that depend on the environment); ``kind`` then says its type and
    ``default_help`` how it is chosen. ``when``: the static values under which the setting
    applies (giving it otherwise is an error)."""

    name: str
    default: Any
    help: str
    traced: bool = False
    bounds: Optional[str] = None  # an interval such as "(0, 1]" (kept as an Interval)
    choices: tuple = ()
    when: Mapping[str, Any] = field(default_factory=dict)
    kind: Optional[type] = None
    default_help: str = ""

    def __post_init__(self):
        if self.kind is None:
            if callable(self.default):
                raise ValueError(f"setting {self.name}: a computed default needs kind=")
            object.__setattr__(self, "kind", type(self.default))
        if self.kind not in KINDS:
            raise ValueError(f"setting {self.name}: kind {self.kind} not one of {KINDS}")
        if self.traced and self.kind not in (int, float):
            raise ValueError(f"setting {self.name}: only numbers can be traced")
        if isinstance(self.bounds, str):
            object.__setattr__(self, "bounds", Interval.parse(self.bounds))

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def describe(self) -> str:
        """The help line: what it is, its kind, allowed values, default."""
        parts = [self.help, "traced" if self.traced else "static"]
        if self.choices:
            parts.append("one of " + ", ".join(map(str, self.choices)))
        if self.bounds is not None:
            parts.append(f"in {self.bounds}")
        if self.when:
            parts.append("only with " + ", ".join(f"{k}={v}" for k, v in self.when.items()))
        default = self.default_help or (format_value(self.default) if not callable(self.default) else "computed")
        parts.append(f"default {default}")
        return "; ".join(parts)

    def parse(self, value) -> Any:
        """``value`` (a Python value, or text from the command line) as this setting's kind,
        checked against its bounds and choices. One-line ValueError otherwise."""
        v = convert(self.name, self.kind, value)
        if self.choices and v not in self.choices:
            raise ValueError(f"{self.name} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        if self.kind in (int, float) and self.bounds is not None and v not in self.bounds:
            raise ValueError(f"{self.name} must lie in {self.bounds}, got {value!r}")
        if self.kind is tuple and any(h <= 0 for h in v):
            raise ValueError(f"{self.name} must be positive integers, got {value!r}")
        return v


def convert(name: str, kind: type, value):
    """``value`` (a Python value or command-line text) as ``kind`` (bool, int, float, str or a
    tuple of ints such as hidden widths, written 64,64 or 64x64); one-line ValueError."""
    text = value.strip() if isinstance(value, str) else None
    if kind is bool:
        if isinstance(value, bool):
            return value
        if text is not None and text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise ValueError(f"{name} must be true or false, got {value!r}")
    if kind is str:
        if text is None:
            raise ValueError(f"{name} must be a string, got {value!r}")
        return text
    if kind is tuple:
        if isinstance(value, (tuple, list)):
            items = list(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [value]
        elif text is not None:  # "" is no integers (hidden: no hidden layer); "x", "64x", "64,,64" are typos
            items = text.replace("x", ",").split(",") if text else []
            if any(not t.strip() for t in items):
                raise ValueError(f"{name} must be integers like 64,64 or 64x64, got {value!r}")
        else:
            raise ValueError(f"{name} must be integers like 64,64, got {value!r}")
        return tuple(convert(name, int, t) for t in items)
    if isinstance(value, bool) or (text is None and not isinstance(value, (int, float))):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        number = float(text if text is not None else value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be {'finite' if kind is float else 'an integer'}, got {value!r}")
    if kind is float:
        return number
    if number != int(number):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(number)


def format_value(v) -> str:
    if isinstance(v, tuple):
        return ",".join(map(str, v)) if v else "(none)"
    if isinstance(v, bool):
        return str(v).lower()
    return f"{v:g}" if isinstance(v, float) else str(v)


def static(name, default, help, **kw) -> Setting:
    """A static setting: part of the config, fixes shapes or the program's structure."""
    return Setting(name, default, help, traced=False, **kw)


def traced(name, default, help, **kw) -> Setting:
    """A traced hyperparameter: a float array in the program (a sweep over it compiles once)."""
    return Setting(name, default, help, traced=True, **kw)


Check = Callable[[Any, dict], None]  # (config, hparams) -> None, raising a one-line ValueError


@dataclass(frozen=True)
class Spec:
    """Every setting of an algorithm, the checks that span several of them (``checks``:
    functions of (config, hparams)), and properties derived from the config (``derived``:
    name -> function of the config, e.g. ``num_updates``)."""

    name: str
    settings: tuple
    checks: tuple = ()
    derived: Mapping[str, Callable] = field(default_factory=dict)

    def __post_init__(self):
        names = [s.name for s in self.settings]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"spec {self.name}: settings declared twice: {sorted(dup)}")

    def extend(self, name: str, settings=(), defaults: Optional[Mapping] = None, checks=(),
               derived: Optional[Mapping] = None) -> "Spec":
        """A new spec: these settings added, ``defaults`` replacing existing defaults."""
        defaults = dict(defaults or {})
        unknown = set(defaults) - set(self.names)
        if unknown:
            raise ValueError(f"spec {name}: defaults for undeclared settings {sorted(unknown)}")
        own = tuple(dataclasses.replace(s, default=defaults[s.name], default_help="") if s.name in defaults else s
                    for s in self.settings)
        return Spec(name, own + tuple(settings), self.checks + tuple(checks), {**self.derived, **(derived or {})})

    @property
    def names(self) -> list:
        return [s.name for s in self.settings]

    def __getitem__(self, name: str) -> Setting:
        for s in self.settings:
            if s.name == name:
                return s
        raise KeyError(name)

    def static_settings(self) -> list:
        return [s for s in self.settings if not s.traced]

    def traced_settings(self) -> list:
        return [s for s in self.settings if s.traced]

    @property
    def config_class(self) -> type:
        return _config_class(self)

    def unknown(self, names) -> None:
        """One-line ValueError for names that are not settings (with the closest match)."""
        for n in names:
            if n not in self.names:
                close = difflib.get_close_matches(n, self.names, 1)
                hint = f"did you mean {close[0]}? " if close else ""
                raise ValueError(f"unknown setting {n!r} for {self.name}; {hint}see `purejaxpg list {self.name}`")

    def resolve(self, overrides: Optional[Mapping] = None, base: Optional[Mapping] = None):
        """(config, hparams) from ``base`` (a preset: applied first, not checked against
        ``when``) and ``overrides`` (the user's values). Every value is parsed and checked;
        bad input raises a one-line ValueError."""
        overrides, base = dict(overrides or {}), dict(base or {})
        self.unknown(list(base) + list(overrides))
        given = {**base, **overrides}
        values = {}
        for s in self.static_settings():
            values[s.name] = s.parse(given[s.name]) if s.name in given else s.default
        config = self.config_class(**values)
        hparams = {}
        for s in self.traced_settings():
            v = given[s.name] if s.name in given else (s.default(config) if callable(s.default) else s.default)
            hparams[s.name] = float(s.parse(v))
        for name in overrides:
            s = self[name]
            if s.when and any(values[k] != v for k, v in s.when.items()):
                need = ", ".join(f"--{k.replace('_', '-')} {format_value(v)}" for k, v in s.when.items())
                raise ValueError(f"{name} applies only with {need}")
        for check in self.checks:
            check(config, hparams)
        return config, hparams


_CLASSES: dict = {}


def _config_class(spec: Spec) -> type:
    """A frozen dataclass with one field per static setting and the derived properties."""
    key = (spec.name, tuple((s.name, s.kind) for s in spec.static_settings()), tuple(spec.derived.items()))
    if key not in _CLASSES:
        fields = [(s.name, s.kind) for s in spec.static_settings()]
        namespace = {k: property(f) for k, f in spec.derived.items()}
        title = "".join(p.capitalize() for p in spec.name.replace("-", "_").split("_"))
        _CLASSES[key] = dataclasses.make_dataclass(f"{title}Config", fields, frozen=True, namespace=namespace)
    return _CLASSES[key]
