// The harness ceiling in `make bench-edge`: answers every request with a fixed small JSON body and
// does nothing else, so its req/s is what Miniflare, workerd, wrk and loopback allow on this machine.
const body = '{"assignments":[]}';
export default {
  fetch() {
    return new Response(body, { headers: { "content-type": "application/json" } });
  },
};
