-- Experiments that watch themselves (issue 15): stopping rules, safe rollouts, alerts, webhooks.
--
-- rules: [{kind, action, ...}] evaluated by the watch job (control-plane/src/watch/rules.rs).
-- rollout: {steps: [{ramp_pct, hold_seconds}], ...}, the plan of a safe rollout;
-- rollout_state: where it is ({step, step_started_at, outcome, reason}), written by the job only.
ALTER TABLE experiments ADD COLUMN rules jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(rules) = 'array');
ALTER TABLE experiments ADD COLUMN rollout jsonb CHECK (rollout IS NULL OR jsonb_typeof(rollout) = 'object');
ALTER TABLE experiments ADD COLUMN rollout_state jsonb CHECK (rollout_state IS NULL OR jsonb_typeof(rollout_state) = 'object');

-- One row per thing worth telling someone. `dedupe_key` makes raising idempotent: evaluating the
-- same data twice, or two evaluators racing, raise (and act on) a finding once.
CREATE TABLE alerts (
    id               bigserial PRIMARY KEY,
    -- Kept when the experiment goes (as the audit log is, migration 0009).
    experiment_id    uuid,
    experiment_key   text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('srm', 'guardrail', 'rule', 'rollout', 'anomaly', 'ready_to_call', 'underpowered')),
    severity         text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    dedupe_key       text NOT NULL,
    title            text NOT NULL,
    -- The numbers that triggered it.
    details          jsonb NOT NULL DEFAULT '{}',
    -- What the platform did about it: notify, pause, stop, rollback, advance, complete.
    action           text NOT NULL DEFAULT 'notify',
    created_at       timestamptz NOT NULL DEFAULT now(),
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    CONSTRAINT alerts_dedupe_key UNIQUE (experiment_id, dedupe_key)
);
CREATE INDEX alerts_feed_idx ON alerts (created_at DESC, id DESC);
CREATE INDEX alerts_experiment_idx ON alerts (experiment_id, id);

-- Webhooks receive every alert of the kinds they list (empty: all), signed with HMAC-SHA256.
CREATE TABLE webhooks (
    id          uuid PRIMARY KEY,
    url         text NOT NULL,
    secret      text NOT NULL,
    kinds       text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The delivery log: one row per (webhook, alert), retried with backoff until delivered or failed.
CREATE TABLE webhook_deliveries (
    id               bigserial PRIMARY KEY,
    webhook_id       uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    alert_id         bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_status      integer,
    last_error       text,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_deliveries_once UNIQUE (webhook_id, alert_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
