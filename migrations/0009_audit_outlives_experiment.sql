-- Drafts can be deleted, and their audit trail must outlive them: the log no longer goes with
-- the experiment (no foreign key), and each entry names the experiment's key so that the trail
-- of a deleted draft can still be read by id or key.
ALTER TABLE experiment_audit DROP CONSTRAINT experiment_audit_experiment_id_fkey;
ALTER TABLE experiment_audit ADD COLUMN experiment_key text;
UPDATE experiment_audit a SET experiment_key = e.key FROM experiments e WHERE e.id = a.experiment_id;
ALTER TABLE experiment_audit ALTER COLUMN experiment_key SET NOT NULL;
CREATE INDEX experiment_audit_key_idx ON experiment_audit (experiment_key, id);
