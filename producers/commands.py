"""Sign commands and put them on the commands topic."""

from __future__ import annotations

from collections.abc import Sequence

from ttfb.emitter import Emitter
from ttfb.events import Signed
from ttfb.settings import Settings
from ttfb.signing import sign


class CommandSender:
    """Signs each command with the shared key and emits it (spooled on outage)."""

    def __init__(self, settings: Settings, name: str = "commands") -> None:
        self.settings = settings
        self.name = name

    async def send_all(self, commands: Sequence[Signed]) -> None:
        emitter = await Emitter(self.settings, self.name).start()
        try:
            key = self.settings.signing_key.get_secret_value()
            for command in commands:
                await emitter.emit(sign(command, key), "commands")
            await emitter.flush()
        finally:
            await emitter.stop()
