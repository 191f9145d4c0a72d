-- Experiments and their lifecycle audit log. Variants are an ordered JSON array (the first is the
-- control) so that a config version is one row, changed atomically.
CREATE TABLE experiments (
    id           uuid PRIMARY KEY,
    key          text NOT NULL,
    name         text NOT NULL,
    description  text NOT NULL DEFAULT '',
    owner_team   text NOT NULL DEFAULT '',
    created_by   text NOT NULL DEFAULT '',
    unit_type    text NOT NULL DEFAULT 'user_id',
    type         text NOT NULL DEFAULT 'ab' CHECK (type IN ('ab', 'bandit')),
    status       text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'running', 'paused', 'stopped')),
    version      bigint NOT NULL DEFAULT 1,
    ramp_pct     double precision NOT NULL DEFAULT 0 CHECK (ramp_pct >= 0 AND ramp_pct <= 100),
    targeting    jsonb NOT NULL DEFAULT '{}',
    variants     jsonb NOT NULL,
    salt         text NOT NULL,
    hash_version integer NOT NULL DEFAULT 1,
    layer        jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    stopped_at   timestamptz,
    CONSTRAINT experiments_key_key UNIQUE (key)
);
CREATE INDEX experiments_status_idx ON experiments (status, created_at DESC);

CREATE TABLE experiment_audit (
    id            bigserial PRIMARY KEY,
    experiment_id uuid NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    action        text NOT NULL,
    from_status   text,
    to_status     text NOT NULL,
    actor         text NOT NULL,
    version       bigint NOT NULL,
    details       jsonb NOT NULL DEFAULT '{}',
    at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX experiment_audit_experiment_idx ON experiment_audit (experiment_id, id);

-- Every publish of the running set to the edge takes the next number: the edge ignores older sets.
CREATE SEQUENCE config_version_seq;
