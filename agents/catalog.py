"""Scenario catalog: which workflows an agent will run, validated from TOML.

Agents run only scenarios from their own catalog. A bad catalog fails with a
message naming the file, the scenario and the field.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ttfb.events import COMPONENTS, Thresholds, ThresholdsSet

DEFAULT_CATALOG = Path(__file__).parent / "catalog" / "default.toml"


class CatalogError(ValueError):
    pass


class ShrinkRules(BaseModel):
    """How to turn a production config into a cheap one that runs the same code;
    for a script scenario the keys are its flags (``"--batch-size" = 8``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    set: dict[str, Any] = Field(default_factory=dict, description="exact overrides")
    cap: dict[str, int] = Field(default_factory=dict, description="glob -> maximum value")
    scale: dict[str, float] = Field(default_factory=dict, description="glob -> factor")


KNOWN_COMPONENTS = (*COMPONENTS, "ttfb")


class ScenarioThresholds(Thresholds):
    """``[scenario.thresholds]``: the team's own minimum effects and false-alarm
    budget, per scenario and per component, and components never alerted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    components: dict[str, Thresholds] = Field(default_factory=dict)
    ignore: list[str] = Field(default_factory=list)

    @field_validator("components", "ignore")
    @classmethod
    def _known(cls, value: Any) -> Any:
        unknown = sorted(set(value) - set(KNOWN_COMPONENTS))
        if unknown:
            raise ValueError(f"unknown component(s) {unknown}; known: {list(KNOWN_COMPONENTS)}")
        return value

    @property
    def empty(self) -> bool:
        return self == ScenarioThresholds()


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    repo: str = Field(min_length=1, description="allowlisted repository name")
    entry: str = Field("", description="module:function of the repository")
    script: str = Field("", description="a script path, relative to the repository root")
    args: list[str] = Field(default_factory=list, description="the script's arguments")
    python: str = Field("", description="the interpreter of the project's environment: an "
                        "absolute path, or a name on the agent's PATH (default: the lab's)")
    workdir: str = Field("", description="working directory, relative to the repository root")
    env: dict[str, str] = Field(
        default_factory=dict, description="environment variables of its runs (a data root, "
        "WANDB_MODE=disabled); an A/B arm's env=KEY=VALUE wins over them")
    pythonpath: list[str] = Field(
        default_factory=lambda: ["."], description="repository folders put first on sys.path, "
        "so the commit's own code is imported (default: the repository root)")
    links: dict[str, str] = Field(
        default_factory=dict, description="files git does not track that the script reads at "
        "a path of the repository ({ \"data/enwik8.gz\" = \"/srv/datasets/enwik8.gz\" }): "
        "each run's checkout has a symbolic link there to the absolute path on the host, "
        "unless the commit has that path itself")
    config: dict[str, Any] = Field(default_factory=dict, description="production config")
    shrink: ShrinkRules = Field(default_factory=ShrinkRules)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    hardware: list[str] = Field(
        default_factory=list, description="hardware classes (TTFB_AGENT_CLASS) that measure "
        "it, each its own series; empty: any one agent that can run its device")
    timeout_s: float = Field(300.0, gt=0)
    cheap: bool = Field(True, description="run on every commit (else on release tags)")
    thresholds: ScenarioThresholds = Field(default_factory=ScenarioThresholds)

    @field_validator("entry")
    @classmethod
    def _entry_shape(cls, value: str) -> str:
        if value and (":" not in value or value.startswith(":") or value.endswith(":")):
            raise ValueError("entry must look like 'package.module:function'")
        return value

    @field_validator("script", "workdir")
    @classmethod
    def _inside(cls, value: str) -> str:
        return _relative(value)

    @field_validator("pythonpath")
    @classmethod
    def _inside_all(cls, value: list[str]) -> list[str]:
        return [_relative(v) or "." for v in value]

    @field_validator("links")
    @classmethod
    def _links(cls, value: dict[str, str]) -> dict[str, str]:
        for path, target in value.items():
            if not _relative(path).strip("./"):
                raise ValueError(f"links: {path!r} names the repository itself, not a path in it")
            if not target.startswith("/"):
                raise ValueError(f"links: {path!r} must go to an absolute path, not {target!r}")
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValueError(f"{key!r} is not an environment variable's name")
            if key.startswith("TTFB_"):
                raise ValueError(f"{key!r}: TTFB_ variables are the lab's own")
        return value

    @field_validator("python")
    @classmethod
    def _interpreter(cls, value: str) -> str:
        if value and not (value.startswith("/") or "/" not in value):
            raise ValueError("python must be an absolute path or a command name, "
                             f"not the relative path {value!r}")
        return value

    def model_post_init(self, _: Any) -> None:
        if bool(self.entry) == bool(self.script):
            raise ValueError("exactly one of entry or script must be set")


def _relative(value: str) -> str:
    """A path inside the repository: relative, with no '..' part."""
    if value.startswith(("/", "~")) or "\\" in value or ".." in Path(value).parts:
        raise ValueError(f"{value!r} must be a path inside the repository (relative, no '..')")
    return value


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scenarios: dict[str, Scenario]

    def get(self, name: str) -> Scenario | None:
        return self.scenarios.get(name)

    def names(self) -> list[str]:
        return sorted(self.scenarios)

    def of_repos(self, repos: list[str]) -> list[str]:
        """The names of the scenarios of these repositories."""
        return [n for n in self.names() if self.scenarios[n].repo in repos]


def load_catalog(path: Path | None = None) -> Catalog:
    """Read and validate a catalog file; errors name file, scenario and field."""
    path = Path(path or DEFAULT_CATALOG)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"{path}: cannot read catalog: {exc}") from None
    entries = data.get("scenario", [])
    if not isinstance(entries, list) or not entries:
        raise CatalogError(f"{path}: expected one or more [[scenario]] tables")
    scenarios: dict[str, Scenario] = {}
    for position, raw in enumerate(entries):
        label = raw.get("name", f"#{position + 1}") if isinstance(raw, dict) else f"#{position}"
        try:
            scenario = Scenario.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "(scenario)"
            raise CatalogError(
                f"{path}: scenario {label!r}: field {field!r}: {first['msg']}") from None
        if scenario.name in scenarios:
            raise CatalogError(f"{path}: scenario {label!r}: field 'name': duplicate name")
        scenarios[scenario.name] = scenario
    return Catalog(scenarios=scenarios)


def thresholds_set(catalog: Catalog, source: str, producer: str) -> list[ThresholdsSet]:
    """Each scenario's overrides as the event that puts them in force (a
    scenario without any gets an empty one: overrides removed from the
    catalog stop applying)."""
    out = []
    for name in catalog.names():
        t = catalog.scenarios[name].thresholds
        out.append(ThresholdsSet(
            scenario=name, scenario_thresholds=Thresholds(
                min_effect_pct=t.min_effect_pct, min_effect_ms=t.min_effect_ms,
                false_alarms_per_week=t.false_alarms_per_week),
            components=dict(t.components), ignore=list(t.ignore),
            source=source if not t.empty else "", producer=producer))
    return out
