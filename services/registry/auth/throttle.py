"""Sign-in throttling, in the key-value store so every replica counts the same failures.

Failures are counted per (username, address): the owner elsewhere is not locked out by a
stranger failing on purpose; per address across usernames: one password sprayed over many
accounts; and per username from every address, with a softer limit that spares the addresses
the user signed in from before. Counts live in windows aligned to the clock, so the answer can
say when to try again (Retry-After) without asking the store.
"""

import time
from dataclasses import dataclass

from shared.kv import KeyValue
from shared.problems import TooManyRequests
from shared.settings import Settings

# An address the user signed in from is remembered this long.
KNOWN_ADDRESS_SECONDS = 30 * 24 * 3600
# Keys hold at most this much of what a caller typed as a username.
USERNAME_IN_KEY = 80


@dataclass(frozen=True)
class Attempt:
    username: str
    address: str
    settings: Settings

    @property
    def window(self) -> int:
        return self.settings.login_window_seconds

    def _keys(self, now: float) -> dict[str, str]:
        user = self.username.lower()[:USERNAME_IN_KEY]
        bucket = int(now) // self.window
        return {
            "pair": f"cordon:login:pair:{bucket}:{user}:{self.address}",
            "address": f"cordon:login:address:{bucket}:{self.address}",
            "username": f"cordon:login:user:{bucket}:{user}",
            "known": f"cordon:login:known:{user}:{self.address}",
        }

    async def admit(self, kv: KeyValue) -> None:
        """Refuse (429) before any password is checked when a limit is reached."""
        now = time.time()
        keys = self._keys(now)
        pair, address, username, known = await kv.numbers(list(keys.values()))
        settings = self.settings
        if pair >= settings.login_failures_per_pair:
            why = "too many failed sign-ins for this user from your address"
        elif address >= settings.login_failures_per_address:
            why = "too many failed sign-ins from your address"
        elif username >= settings.login_failures_per_username and not known:
            why = "too many failed sign-ins for this user"
        else:
            return
        wait = self.window - int(now) % self.window
        raise TooManyRequests(f"{why}; try again in {wait} s", headers={"Retry-After": str(wait)})

    async def failed(self, kv: KeyValue) -> None:
        keys = self._keys(time.time())
        for name in ("pair", "address", "username"):
            await kv.hit(keys[name], window_seconds=self.window)

    async def succeeded(self, kv: KeyValue) -> None:
        # The address's and the username's counts stay: an attacker who also holds an
        # account of their own must not wash their failures away by signing in.
        keys = self._keys(time.time())
        await kv.reset(keys["pair"])
        await kv.raise_to(keys["known"], 1, ttl_seconds=KNOWN_ADDRESS_SECONDS)
