import pytest

from ttfb import events as ev
from ttfb.signing import CommandRefused, Verifier, sign

KEY = "k" * 32


def command() -> ev.RunRequested:
    return ev.RunRequested(repo="demo", scenario="recsys", commit="abc")


def test_signed_command_verifies() -> None:
    Verifier(KEY).verify(sign(command(), KEY))


@pytest.mark.parametrize("wire", [ev.encode, ev.compact])
def test_signature_survives_the_wire(wire) -> None:  # type: ignore[no-untyped-def]
    """Sent canonical or as the decision worker sends its outputs (pydantic-core's
    field order): the agent reads the same command, and the signature holds."""
    arm = ev.Arm(label="b", env={"B": "1", "A": "2"})
    signed = sign(command().model_copy(update={"arm": arm, "background": True}), KEY)
    received = ev.decode(wire(signed))
    assert received == signed
    Verifier(KEY).verify(received)  # type: ignore[arg-type]


@pytest.mark.parametrize(("make", "reason"), [
    (lambda: command(), "unsigned"),
    (lambda: sign(command(), "other-key"), "bad signature"),
    (lambda: sign(command(), KEY).model_copy(update={"commit": "evil"}), "bad signature"),
    (lambda: sign(command(), KEY).model_copy(update={"signed_at": 5.0}), "bad signature"),
    (lambda: sign(command(), KEY, now=1_000.0), "stale"),
    (lambda: sign(command(), KEY, now=9e9), "future"),
])
def test_refusals(make, reason: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CommandRefused, match=reason):
        Verifier(KEY).verify(make())


def test_replay_is_refused() -> None:
    verifier, signed = Verifier(KEY), sign(command(), KEY)
    verifier.verify(signed)
    with pytest.raises(CommandRefused, match="replayed"):
        verifier.verify(signed)
