-- Managed API keys (`POST /api/v1/keys`). The secret is shown once, at creation; what is stored
-- is its SHA-256 (a key is 256 random bits: no dictionary to slow down) and a lookup prefix,
-- unique, so a request finds its row by index and compares the hash in constant time.
CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    name         text NOT NULL,
    role         text NOT NULL CHECK (role IN ('admin', 'read', 'ingest', 'assign')),
    prefix       text NOT NULL UNIQUE,
    hash         bytea NOT NULL,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
