-- Bandits that steer traffic: each experiment's policy settings, and every weight vector the
-- reweighting job served, with the evidence it was computed from (GET .../bandit/history).
ALTER TABLE experiments ADD COLUMN bandit jsonb CHECK (bandit IS NULL OR jsonb_typeof(bandit) = 'object');
-- Bumped on purpose to re-randomise units that keep their first variant (sticky assignments
-- recorded under an older bucket version no longer count).
ALTER TABLE experiments ADD COLUMN bucket_version integer NOT NULL DEFAULT 0 CHECK (bucket_version >= 0);

CREATE TABLE bandit_weights (
    experiment_id      uuid NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    seq                integer NOT NULL CHECK (seq >= 1),
    computed_at        timestamptz NOT NULL DEFAULT now(),
    -- The experiment's version that serves these weights.
    experiment_version bigint NOT NULL,
    policy             text NOT NULL,
    stage              text NOT NULL,
    -- {variant key: weight}
    weights            jsonb NOT NULL,
    -- the weights served before these ({variant key: weight}): the first version's are the launch's
    previous           jsonb NOT NULL,
    -- [{key, units, mean, weighted_mean, score}] as computed
    arms               jsonb NOT NULL,
    PRIMARY KEY (experiment_id, seq)
);
