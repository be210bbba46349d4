-- API keys: a public id to find the key by, and a digest of the whole key, never the key itself.
--
-- A key is "sck_<key_id>_<secret>" with a 256-bit random secret, so a plain SHA-256 digest is
-- enough to make a stolen table useless: slow password hashes exist for guessable secrets, and
-- would cost every request a hash. The id is public (it appears in listings and logs); the
-- secret never leaves the create command's output.

CREATE TABLE api_keys (
    key_id       text PRIMARY KEY CHECK (key_id ~ '^[a-z0-9]{12}$'),
    name         text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    scope        text NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    digest       bytea NOT NULL CHECK (length(digest) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
