"""Typed, validated configuration shared by every workflow."""

from dataclasses import dataclass, fields


class ConfigError(ValueError):
    pass


def build(cls, raw):
    """Build dataclass ``cls`` from a dict, rejecting unknown and mistyped keys."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown keys {unknown}")
    values = {}
    for name, field in known.items():
        if name not in raw:
            continue
        value = raw[name]
        expected = field.type if isinstance(field.type, type) else eval(field.type)  # noqa: S307
        if expected is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, expected):
            raise ConfigError(f"{cls.__name__}.{name}: expected {expected.__name__}")
        values[name] = value
    cfg = cls(**values)
    check = getattr(cfg, "validate", None)
    if check:
        check()
    return cfg


@dataclass
class RunConfig:
    seed: int = 0
    device: str = "auto"
    deterministic: bool = True
    batches: int = 1

    def validate(self):
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda, not {self.device!r}")
