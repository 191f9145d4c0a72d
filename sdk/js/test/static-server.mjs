// A tiny static server for the example page, laid out as `make run` serves it under
// dashboard/dist/sdk-example/: the page at /, the built SDK (sdk/js/dist) at /sdk/.
import http from "node:http";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import path from "node:path";

const SDK = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".wasm": "application/wasm", ".ts": "text/plain" };

export async function startStatic() {
  const server = http.createServer(async (req, res) => {
    const p = decodeURIComponent(new URL(req.url, "http://x").pathname);
    const file = p.startsWith("/sdk/")
      ? path.join(SDK, "dist", p.slice(5))
      : path.join(SDK, "example", p === "/" ? "index.html" : p.slice(1));
    if (!file.startsWith(SDK + path.sep)) return res.writeHead(403).end();
    try {
      const body = await readFile(file);
      res.writeHead(200, { "content-type": TYPES[path.extname(file)] ?? "application/octet-stream" });
      res.end(body);
    } catch {
      res.writeHead(404).end("not found");
    }
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) };
}
