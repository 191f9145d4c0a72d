import { Miniflare, convertV4MiniflareOptions } from "miniflare";
const [script, withBinding] = [process.argv[2], process.argv[3] === "1"];
const mf = new Miniflare(convertV4MiniflareOptions({ compatibilityDate: "2026-11-01", workers: [{ name: "w", modules: true, scriptPath: script, bindings: withBinding ? { GB_EXPERIMENTS: "[]" } : {} }] }));
try { await mf.ready; const r = await mf.dispatchFetch("http://x/v1/assign?unit_id=a"); console.log(r.status, (await r.text()).slice(0,200)); } catch (e) { console.log("ERR", e.message.slice(0,300)); }
await mf.dispose();
