// /experiments/{id}/settings: metadata and targeting (any time before it stops), variants, unit
// type and type (while draft). Only the fields that changed are sent.
import { useEffect, useState } from 'preact/hooks';
import { api, getActor, type Experiment, type ExperimentInput } from '../api';
import { Alert, ExperimentHeader, LoadError, Spinner, useLoad } from '../components';
import { ExperimentForm } from '../editors';

export function Settings({ id }: { id: string }) {
  const exp = useLoad(() => api.getExperiment(id), [id]);
  const [saved, setSaved] = useState<string | null>(null);
  useEffect(() => {
    if (exp.data) document.title = `Settings · ${exp.data.name} · Litmus Edge`;
  }, [exp.data?.name]);
  if (exp.error) return <LoadError error={exp.error} />;
  if (!exp.data) return <Spinner />;
  const e = exp.data;
  return (
    <>
      <ExperimentHeader exp={e} tab="settings" />
      <div role="status" aria-live="polite">
        {saved && (
          <Alert kind="success" testId="settings-saved">
            {saved}
          </Alert>
        )}
      </div>
      <ExperimentForm
        mode="edit"
        exp={e}
        submitLabel="Save changes"
        save={async (input) => {
          setSaved(null);
          const patch = diff(e, input);
          if (!Object.keys(patch).length) {
            setSaved('Nothing changed.');
            return;
          }
          const updated = await api.updateExperiment(e.id, { ...patch, actor: getActor() });
          exp.setData(updated);
          setSaved(`Saved (${Object.keys(patch).map((k) => k.replace('_', ' ')).join(', ')}). Now version ${updated.version}.`);
        }}
      />
    </>
  );
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** Only what changed, and never draft-only fields once the experiment has launched. */
function diff(e: Experiment, input: ExperimentInput): Partial<ExperimentInput> {
  const out: Partial<ExperimentInput> = {};
  if (input.name !== e.name) out.name = input.name;
  if (input.description !== e.description) out.description = input.description;
  if (input.owner_team !== e.owner_team) out.owner_team = input.owner_team;
  if (!same(input.targeting ?? {}, e.targeting ?? {})) out.targeting = input.targeting;
  if (e.status === 'draft') {
    if (input.unit_type !== e.unit_type) out.unit_type = input.unit_type;
    if (input.type !== e.type) out.type = input.type;
    const norm = (vs: ExperimentInput['variants']) => vs.map((v) => ({ key: v.key, name: v.name || v.key, weight: Number(v.weight), config_json: v.config_json ?? {} }));
    if (!same(norm(input.variants), norm(e.variants))) out.variants = input.variants;
  }
  return out;
}
