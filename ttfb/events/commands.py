"""Commands: what the lab asks agents to do (signed)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ttfb.events.base import Arm, Purpose, Signed, new_id


class RunRequested(Signed):
    type: Literal["RunRequested"] = "RunRequested"
    request_id: str = Field(default_factory=new_id)
    scenario: str = Field(min_length=1, max_length=200)
    repo: str = Field(min_length=1, max_length=200)
    commit: str = Field(min_length=1, max_length=200)
    branch: str = "main"
    runs: int = Field(1, ge=1, le=1000)
    purpose: Purpose = "adhoc"
    arm: Arm = Field(default_factory=Arm)
    correlation_id: str = ""
    profile: bool = False
    # the agents that may run it: "" any that can run the scenario's device
    hardware_class: str = Field("", max_length=64)
    # runs that refine a change already told (an alert out, its bisect under
    # way): an agent runs them after its monitoring. Left out of the bytes
    # where false, so every other command reads as it did before it existed
    background: bool = Field(False, exclude_if=lambda value: not value)
    # a profiled run: what changed since this revision (a pull request's
    # base) is marked as changed, not only the commit's own change. Left out
    # of the bytes where empty, as ``background`` is
    changed_since: str = Field("", max_length=200, exclude_if=lambda value: not value)


# the most commits a range listing holds: a bisect's range
MAX_RANGE = 1000


def range_too_long(commits: int) -> str:
    """Why a range of ``commits`` commits is not listed or bisected."""
    return f"range of {commits} commits exceeds {MAX_RANGE}; narrow it with a closer good commit"


class CommitRangeRequested(Signed):
    type: Literal["CommitRangeRequested"] = "CommitRangeRequested"
    request_id: str = Field(default_factory=new_id)
    scenario: str
    repo: str
    good: str
    bad: str
    correlation_id: str = ""
