"""Password hashes: Argon2id through argon2-cffi; older scrypt hashes still verify.

The parameters default to RFC 9106 section 4, "SECOND RECOMMENDED option"
(Argon2id, t=3 passes, p=4 lanes, m=64 MiB; argon2-cffi's
`argon2.profiles.RFC_9106_LOW_MEMORY`), which is also above the OWASP Password
Storage Cheat Sheet's minimum for Argon2id (m=19 MiB, t=2, p=1).
Sources: https://www.rfc-editor.org/rfc/rfc9106.html#section-4 and
https://cheatsheetseries.owasp.org/cheatsheets/Password_Storage_Cheat_Sheet.html

Hashes are PHC strings (`$argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>`), so a
stored hash carries its own parameters: when the configured ones change (or the
hash is one of the scrypt hashes made before, `scrypt$N$r$p$<salt>$<digest>`),
`Verdict.needs_rehash` says so after a successful check and the caller stores a
new hash made from the password it just checked.

Timing: every `verify` costs the same whatever it is given. It computes one
Argon2id and one scrypt hash each time (against fixed dummies for the one not
needed, and for both when there is no account), so neither an unknown email nor
an account that still has a scrypt hash answers faster or slower than any other.
The work runs on a small pool of threads of its own, never on the event loop,
and at most `concurrency` hashes run at once, which bounds their memory
(`concurrency` x `memory_kib`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property

from argon2 import PasswordHasher, Type, profiles
from argon2.exceptions import InvalidHashError, VerificationError

_RFC_9106 = profiles.RFC_9106_LOW_MEMORY

# The scrypt hashes of earlier versions: N=2^14, r=8, p=1, 16-byte salt, 32-byte digest.
LEGACY_SCHEME = "scrypt"
_LEGACY_N, _LEGACY_R, _LEGACY_P = 2**14, 8, 1
_LEGACY_DUMMY = f"scrypt${_LEGACY_N}${_LEGACY_R}${_LEGACY_P}$" + "A" * 22 + "$" + "A" * 43


@dataclass(frozen=True)
class Verdict:
    """The outcome of a check: whether the password matched, and whether the stored
    hash should be replaced (made with other parameters, or with scrypt)."""

    valid: bool
    needs_rehash: bool = False


@dataclass(frozen=True)
class Passwords:
    """Hashes and checks passwords with Argon2id.

        passwords = Passwords()
        stored = await passwords.hash("correct horse battery")
        verdict = await passwords.verify("correct horse battery", stored)
        assert verdict.valid and not verdict.needs_rehash

    memory_kib: Argon2 memory cost in KiB (m); iterations: passes (t); lanes: parallelism (p);
    concurrency: how many hashes may be computed at the same time (each on its own thread).
    """

    memory_kib: int = _RFC_9106.memory_cost
    iterations: int = _RFC_9106.time_cost
    lanes: int = _RFC_9106.parallelism
    concurrency: int = 4

    def __post_init__(self) -> None:
        if self.memory_kib < 8 * self.lanes or self.iterations < 1 or self.lanes < 1:
            raise ValueError("Argon2 needs t >= 1, p >= 1 and m >= 8 * p KiB")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")

    @cached_property
    def _hasher(self) -> PasswordHasher:
        return PasswordHasher(
            time_cost=self.iterations,
            memory_cost=self.memory_kib,
            parallelism=self.lanes,
            hash_len=_RFC_9106.hash_len,
            salt_len=_RFC_9106.salt_len,
            type=Type.ID,
        )

    @cached_property
    def _pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="password")

    @cached_property
    def _dummy(self) -> str:
        # A real hash with the current parameters, of a password no one can send (a NUL
        # is refused at sign-up), so checking against it costs what a real check costs.
        return self._hasher.hash("\x00" + secrets.token_hex(16))

    async def hash(self, password: str) -> str:
        """The Argon2id PHC string of `password`, computed off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._hasher.hash, password
        )

    async def verify(self, password: str, stored: str | None) -> Verdict:
        """Check `password` against a stored hash (None: there is no account; never valid).

        A malformed stored hash is simply not valid; this never raises for one.
        """
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._verify, password, stored
        )

    def _verify(self, password: str, stored: str | None) -> Verdict:
        legacy = stored is not None and stored.startswith(LEGACY_SCHEME + "$")
        modern = stored if stored is not None and not legacy else self._dummy
        argon2_valid = self._check_argon2(password, modern)
        scrypt_valid = _check_scrypt(password, stored if legacy and stored else _LEGACY_DUMMY)
        if stored is None:
            return Verdict(valid=False)
        if legacy:
            return Verdict(valid=scrypt_valid, needs_rehash=scrypt_valid)
        return Verdict(
            valid=argon2_valid,
            needs_rehash=argon2_valid and self._hasher.check_needs_rehash(stored),
        )

    def _check_argon2(self, password: str, stored: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False


def _check_scrypt(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != LEGACY_SCHEME:
            return False
        digest = hashlib.scrypt(
            password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
        return hmac.compare_digest(digest, _unb64(expected))
    except ValueError:  # a malformed hash, or parameters scrypt refuses
        return False


def legacy_scrypt_hash(password: str, *, salt: bytes | None = None) -> str:
    """A hash in the scrypt format of earlier versions (for tests of the upgrade path)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=_LEGACY_N, r=_LEGACY_R, p=_LEGACY_P, dklen=32
    )
    return "$".join(
        [LEGACY_SCHEME, str(_LEGACY_N), str(_LEGACY_R), str(_LEGACY_P), _b64(salt), _b64(digest)]
    )


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
