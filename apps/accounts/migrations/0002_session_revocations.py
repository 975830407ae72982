"""Sessions end wherever they are ended: PostgreSQL records every deleted session row, and a
password change or a deactivation deletes the user's sessions, even when done in raw SQL.

- `session_revocations` (extension): the ids of deleted session rows, until
  `apps.accounts.services.session_revocations_relay` has dropped their Redis cache and
  closed their sockets (4409) on every process.
- `sessions_record_revoked`: after any DELETE on `sessions` (logout, admin revoke, a user's
  cascade, raw SQL), one row per deleted session. Statement-level with a transition table:
  one INSERT per DELETE statement, however many rows it removed.
- `users_credentials_changed`: after an UPDATE that changes `password_hash`, or that sets
  `is_active` to false, delete the user's sessions. On a password change the transaction
  may name one session to keep (`SELECT set_config('pms.keep_session', <id>, true)`: the
  user changing their own password keeps the session they did it with); a deactivation
  deletes them all. A hash upgrade on login (`User.check_password` sets
  `pms.password_rehash`) is the same password and ends nothing. Written as a trigger so `UPDATE users SET is_active = false` in psql
  or `QuerySet.update()` is caught as surely as a service call.
"""

from django.db import migrations, models
import django.db.models.functions.datetime
import django.utils.timezone

CREATE_TRIGGERS = """
CREATE FUNCTION pms_sessions_record_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO session_revocations (session_id, created_at) SELECT session_id, now() FROM gone;
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_record_revoked AFTER DELETE ON sessions
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION pms_sessions_record_revoked();

CREATE FUNCTION pms_users_credentials_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    keep uuid;
BEGIN
    IF NEW.is_active IS FALSE THEN
        DELETE FROM sessions WHERE user_id = NEW.user_id;
    ELSIF current_setting('pms.password_rehash', true) = 'on' THEN
        NULL;  -- the same password re-hashed on login (`User.check_password`): not a change
    ELSE
        keep := NULLIF(current_setting('pms.keep_session', true), '')::uuid;
        DELETE FROM sessions WHERE user_id = NEW.user_id AND session_id IS DISTINCT FROM keep;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER users_credentials_changed AFTER UPDATE OF password_hash, is_active ON users
    FOR EACH ROW
    WHEN (OLD.password_hash IS DISTINCT FROM NEW.password_hash
          OR (NEW.is_active IS FALSE AND OLD.is_active IS DISTINCT FROM FALSE))
    EXECUTE FUNCTION pms_users_credentials_changed();
"""

DROP_TRIGGERS = """
DROP TRIGGER IF EXISTS users_credentials_changed ON users;
DROP FUNCTION IF EXISTS pms_users_credentials_changed();
DROP TRIGGER IF EXISTS sessions_record_revoked ON sessions;
DROP FUNCTION IF EXISTS pms_sessions_record_revoked();
"""


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="SessionRevocation",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("session_id", models.UUIDField()),
                (
                    "created_at",
                    models.DateTimeField(
                        db_default=django.db.models.functions.datetime.Now(),
                        default=django.utils.timezone.now,
                        editable=False,
                    ),
                ),
            ],
            options={
                "db_table": "session_revocations",
            },
        ),
        migrations.RunSQL(CREATE_TRIGGERS, DROP_TRIGGERS),
    ]
