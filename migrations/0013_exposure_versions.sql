-- The config version an exposure was served from (`version` on exposure events, written by the
-- edge). A bandit's reweight is a new version, and the edge switches to it some time after the
-- control plane commits it: the version, not the exposure's time, says which weights placed a
-- unit. NULL for exposures sent without one (the period is then taken from the time).
ALTER TABLE events ADD COLUMN version bigint;
ALTER TABLE unit_exposures ADD COLUMN version bigint;
ALTER TABLE quarantined_events ADD COLUMN version bigint;
