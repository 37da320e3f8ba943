import base64
import json

import pytest

from ttfb import events as ev


def sample_events() -> list[ev.Event]:
    comps = {c: 1.0 + i for i, c in enumerate(ev.COMPONENTS)}
    return [
        ev.RunRequested(repo="demo",
                        scenario="recsys", commit="abc", runs=3, arm=ev.Arm(env={"A": "1"})),
        ev.ComponentMeasured(repo="demo",
                             scenario="recsys", commit="abc", component="data", ms=12.5),
        ev.RunCompleted(repo="demo", scenario="lm", commit="abc", ttfb_ms=sum(comps.values()),
                        components=comps, modules=["trainlab/lm/train.py"]),
        ev.RunFailed(repo="demo", scenario="lm", commit="abc", reason="boom", exit_code=1),
        ev.DeadLettered(reason="bad", raw_b64="eA=="),
        ev.RegressionConfirmed(repo="demo", scenario="lm", component="config", commit="c",
                               direction="regression", effect_pct=10.0),
        ev.BisectCompleted(bisect_id="b", scenario="lm", component="config", good="a", bad="c",
                           steps=[ev.BisectStep(commit="b", runs=4, decision="good")]),
        ev.Alert(alert_id="a", kind="regression", scenario="lm", component="config",
                 commit="c", effect_ms=300.0, effect_pct=10.0),
    ]


@pytest.mark.parametrize("event", sample_events(), ids=lambda e: e.type)
def test_round_trip_is_identity(event: ev.Event) -> None:
    assert ev.decode(ev.encode(event)) == event


def test_encoding_is_canonical() -> None:
    event = sample_events()[0]
    assert ev.encode(event) == ev.encode(ev.decode(ev.encode(event)))
    assert json.loads(ev.encode(event))["type"] == "RunRequested"


def test_events_are_frozen() -> None:
    event = sample_events()[1]
    with pytest.raises(Exception):
        event.ms = 3.0  # type: ignore[misc]


def _measured(**overrides: object) -> bytes:
    data = json.loads(ev.encode(sample_events()[1]))
    data.update(overrides)
    return json.dumps(data).encode()


@pytest.mark.parametrize(("raw", "reason"), [
    (b"{not json", "malformed JSON"),
    (b"", "empty payload"),
    (b"[1, 2]", "expected a JSON object"),
    (b'{"type": "Nope", "schema_version": 1}', "unknown event type"),
    (_measured(schema_version=2), "unsupported schema_version"),
    (_measured(ms=-1.0), "greater than or equal"),
    (_measured(ms=1e12), "less than or equal"),
    (_measured(component="gpu_magic"), "component"),
    (_measured(extra_field=1), "extra"),
    (_measured(ms="NaN").replace(b'"NaN"', b"NaN"), "non-finite"),
    (b'{"type": "ComponentMeasured", "schema_version": 1}', "invalid ComponentMeasured"),
])
def test_bad_bytes_are_rejected_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(ev.EventRejected) as info:
        ev.decode(raw)
    assert reason in info.value.reason


def test_oversized_payload_is_rejected() -> None:
    with pytest.raises(ev.EventRejected, match="oversized"):
        ev.decode(b"{" + b" " * 2000 + b"}", max_bytes=1000)


def test_dead_letter_keeps_the_raw_bytes_whole() -> None:
    raw = b"\x00\xffgarbage"
    letter = ev.decode_or_dead_letter(raw, "ttfb.measurements", "sink")
    assert isinstance(letter, ev.DeadLettered)
    assert base64.b64decode(letter.raw_b64) == raw
    assert letter.source_topic == "ttfb.measurements"
    assert "malformed JSON" in letter.reason


def test_run_completed_rejects_absurd_component() -> None:
    with pytest.raises(Exception, match="absurd"):
        ev.RunCompleted(repo="demo",
                        scenario="s", commit="c", ttfb_ms=1.0, components={"data": -5.0})


def test_partition_key_is_the_scenario() -> None:
    assert sample_events()[1].key == "recsys"
    letter = ev.DeadLettered(reason="x")
    assert letter.key == letter.event_id


def _slow_decode(raw: bytes) -> ev.Event:
    """What ``decode`` accepted before its one-pass path: ``json.loads``
    (non-finite constants refused), then validation of the object."""
    from ttfb.events.codec import _ADAPTER, _reject_constant

    return _ADAPTER.validate_python(json.loads(raw, parse_constant=_reject_constant))  # type: ignore[no-any-return]


@pytest.mark.parametrize("event", sample_events(), ids=lambda e: e.type)
def test_decoding_in_one_pass_gives_what_parsing_then_validating_gives(event: ev.Event) -> None:
    raw = ev.encode(event)
    pretty = json.dumps(json.loads(raw), indent=2).encode()  # newlines between tokens: valid JSON
    for form in (raw, pretty):
        decoded = ev.decode(form)
        assert decoded == _slow_decode(form) == event
        assert type(decoded) is type(event)


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity"])
def test_a_non_finite_constant_is_refused_even_where_any_value_is_allowed(token: bytes) -> None:
    run = sample_events()[2]
    raw = ev.encode(run.model_copy(update={"profile": {"x": 1}})).replace(b'"x":1', b'"x":' + token)
    with pytest.raises(ev.EventRejected, match="non-finite"):
        ev.decode(raw)
    # the words themselves, inside a string, are a subject like any other
    titled = run.model_copy(update={"subject": "Fix NaN loss on Infinity"})
    assert ev.decode(ev.encode(titled)) == titled
