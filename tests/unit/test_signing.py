import pytest

from ttfb import events as ev
from ttfb.signing import CommandRefused, Verifier, sign

KEY = "k" * 32


def command() -> ev.RunRequested:
    return ev.RunRequested(repo="demo", scenario="recsys", commit="abc")


def test_signed_command_verifies() -> None:
    Verifier(KEY).verify(sign(command(), KEY))


def test_signature_survives_the_wire() -> None:
    signed = sign(command(), KEY)
    Verifier(KEY).verify(ev.decode(ev.encode(signed)))  # type: ignore[arg-type]


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
