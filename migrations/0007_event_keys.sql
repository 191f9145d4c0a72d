-- Dedup on a fixed-width key. `event_ids` held the id as text, inserted with ON CONFLICT: per new
-- event that cost more than storing the event itself (a speculative insertion, a collated text
-- comparison on every btree step, random positions for random ids). Now the key is a uuid: the
-- id itself when it is a canonical (lowercase, hyphenated) UUID, which is what the edge, the
-- SDKs and the control plane mint, else the MD5 of its UTF-8 bytes (computed the same way by
-- the control plane, `http/events.rs`, `event_key`). Two distinct ids share a key with
-- probability about n²/2¹²⁹: never, at any volume this table will see. The edge mints UUIDv7,
-- time-ordered, so new keys land at the right edge of the index rather than all over it.
CREATE TABLE event_keys (
    experiment_id uuid NOT NULL,
    event_key     uuid NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (experiment_id, event_key)
);
INSERT INTO event_keys (experiment_id, event_key, received_at)
SELECT experiment_id,
       CASE WHEN event_id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
            THEN event_id::uuid ELSE md5(event_id)::uuid END,
       received_at
FROM event_ids
ON CONFLICT DO NOTHING;
DROP TABLE event_ids;
ALTER TABLE event_keys RENAME TO event_ids;
ALTER INDEX event_keys_pkey RENAME TO event_ids_pkey;
