// /experiments/new: create a draft with its variants. Nothing is served until it is launched.
import { useEffect } from 'preact/hooks';
import { api, getActor } from '../api';
import { ExperimentForm } from '../editors';
import { setFlash } from '../flash';
import { Link, experimentPath, navigate } from '../router';

export function New() {
  useEffect(() => {
    document.title = 'New experiment · Litmus Edge';
  }, []);
  return (
    <>
      <header class="page-header">
        <nav aria-label="Breadcrumb" class="breadcrumb">
          <Link href="/experiments">Experiments</Link> <span aria-hidden="true">/</span> <span>New</span>
        </nav>
        <h1 tabIndex={-1}>New experiment</h1>
        <p class="muted">Saved as a draft: review it, then launch it from its page with a ramp.</p>
      </header>
      <ExperimentForm
        mode="create"
        submitLabel="Save draft"
        save={async (input) => {
          const exp = await api.createExperiment({ ...input, created_by: getActor() });
          setFlash(`Draft “${exp.name}” saved. Launch it when you are ready.`);
          navigate(experimentPath(exp.id));
        }}
      />
    </>
  );
}
