-- Per-experiment metric declarations for the readout: [{"name","kind","role","direction"}]
-- (roles primary | guardrail | secondary). Undeclared metrics are still analysed.
ALTER TABLE experiments ADD COLUMN metrics jsonb NOT NULL DEFAULT '[]';
