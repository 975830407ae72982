"""The fuzz server's settings: production's (`pms.settings`), but the suite's fast password hasher.

The fuzzer reaches password hashing many times per run: every `POST /api/v1/auth/logout` and
`/refresh` example logs in a session of its own, and every generated login for an unknown email,
user create or password change hashes once (apps/accounts/backends.py hashes even for an unknown
email, against timing attacks). With Django's PBKDF2 (1,000,000 rounds, 0.52 s of CPU each here)
that was a third of each run's ~100 s. What the fuzzer checks (no 5xx, declared statuses, bodies
that fit the schema) does not depend on the hasher; the production hashers stay under test in
tests/e2e (their servers keep `pms.settings`) and tests/apps/accounts.
"""

from pms.settings import *  # noqa: F403  (production settings, one override below)

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # as tests/conftest.py's `fast_password_hashing`
