-- Saved groups: named lists of attribute values that targeting refers to with `$inGroup` /
-- `$notInGroup` (GrowthBook's saved groups). Published to the edge with the config set.
CREATE TABLE saved_groups (
    id text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_.:-]{1,100}$'),
    description text NOT NULL DEFAULT '',
    "values" jsonb NOT NULL CHECK (jsonb_typeof("values") = 'array'),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
