"""A concluded confirmation as events: a finding and an alert per confirmed
component, a dismissal for each other."""

from __future__ import annotations

from streams.detection.compare import compare_sides
from streams.detection.policy import TOTAL, Policy
from streams.detection.state import Confirmation
from ttfb import events as ev
from ttfb.stats import Comparison


def verdicts(c: Confirmation, scenario: str, comparisons: dict[str, Comparison],
              policy: Policy, known: dict[str, str]) -> list[ev.Event]:
    names = sorted(c.components)
    confirmed = {n for n, yes in c.decided.items() if yes}
    runs = len(c.before) + len(c.after) + c.failed + c.warmups
    whole = compare_sides(c, [TOTAL]).get(TOTAL) if c.before and c.after else None
    ttfb = dict(ttfb_effect_ms=whole.effect_ms, ttfb_effect_pct=whole.effect_pct,
                ttfb_ci_low_pct=whole.ci_low_pct, ttfb_ci_high_pct=whole.ci_high_pct) \
        if whole else {}
    out: list[ev.Event] = []
    for n in names:
        cmp = comparisons.get(n)
        fields = dict(
            detection_id=c.detection_id, scenario=scenario, repo=c.repo, component=n,
            commit=c.commit,
            good_commit=c.good_commit, direction=c.components[n], hardware_id=c.hardware_id,
            hardware_class=c.hardware_class,
            branch=c.branch, effect_ms=cmp.effect_ms if cmp else 0.0,
            effect_pct=cmp.effect_pct if cmp else 0.0,
            ci_low_pct=cmp.ci_low_pct if cmp else 0.0,
            ci_high_pct=cmp.ci_high_pct if cmp else 0.0,
            p_value=cmp.p_value if cmp else 1.0, threshold=policy.confirm_alpha,
            runs_spent=runs, producer="ttfb-detector", **ttfb)
        if n not in confirmed:
            out.append(ev.DetectionDismissed(  # type: ignore[arg-type]
                **fields, known_at=known.get(n, "")))
            continue
        kind = c.components[n]
        finding_cls = ev.RegressionConfirmed if kind == "regression" else ev.ImprovementConfirmed
        out.append(finding_cls(**fields, evidence_before=[r[n] for r in c.before],  # type: ignore[arg-type]
                               evidence_after=[r[n] for r in c.after],
                               monitored=c.monitored.get(n, {})))
        out.append(ev.Alert(
            alert_id=f"{c.detection_id}:{n}", kind=kind, scenario=scenario,  # type: ignore[arg-type]
            component=n, commit=c.commit, effect_ms=fields["effect_ms"],  # type: ignore[arg-type]
            effect_pct=fields["effect_pct"], ci_low_pct=fields["ci_low_pct"],  # type: ignore[arg-type]
            ci_high_pct=fields["ci_high_pct"], author=c.author,  # type: ignore[arg-type]
            subject=c.subject,
            link=f"{policy.dashboard_url}/regressions?detection={c.detection_id}",
            producer="ttfb-detector", **ttfb))
    return out
