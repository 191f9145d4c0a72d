// The peer in `make bench-edge`: a plain JavaScript worker doing what ours does with GrowthBook's
// SDK, written the way GrowthBook documents it for edge workers: the experiment definitions parsed
// once and kept in module scope, a GrowthBook instance per request with that request's
// attributes, `run()` for each experiment, and the same JSON answer shape as our /v1/assign
// (GET with the attributes in the query, or POST with them in the body, as ours takes them).
// Bundled by scripts/bench-edge.sh with esbuild (NODE_ENV=production strips the SDK's debug logs).
// Imported on the first request: the SDK's module set-up touches things workerd allows only
// while handling a request (it fails at start-up otherwise).
let GrowthBook = null;
let experiments = null;

export default {
  async fetch(request, env) {
    GrowthBook ??= (await import("@growthbook/growthbook")).GrowthBook;
    experiments ??= JSON.parse(env.GB_EXPERIMENTS);
    let attributes;
    if (request.method === "POST") {
      // As SDKs call ours: {"unit_id", "attributes"}.
      const body = await request.json();
      attributes = { ...body.attributes, id: body.unit_id };
    } else {
      const q = new URL(request.url).searchParams;
      attributes = { id: q.get("unit_id") };
      for (const [k, v] of q) {
        if (k === "unit_id" || k === "experiment") continue;
        const n = Number(v);
        attributes[k] = v !== "" && Number.isFinite(n) ? n : v;
      }
    }
    if (!attributes.id) return Response.json({ error: { code: "validation_failed", message: "unit_id is required", field: "unit_id" } }, { status: 422 });
    const gb = new GrowthBook({ attributes });
    const assignments = experiments.map((exp) => {
      const r = gb.run(exp);
      return {
        experiment: exp.key,
        variant_key: exp.meta[r.inExperiment ? r.variationId : 0].key,
        config_json: r.inExperiment ? r.value : exp.variations[0],
        in_experiment: r.inExperiment,
      };
    });
    return Response.json({ assignments });
  },
};
