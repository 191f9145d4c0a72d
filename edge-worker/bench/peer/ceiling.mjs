// The harness ceiling in `make bench-edge`: answers every request with a fixed small JSON body and
// does nothing else, so its req/s is what Miniflare, workerd, wrk and loopback allow on this machine.
// A POST's body is read first, as any worker answering from it must (the peer, ours): the runtime's
// cost of handing a body to JavaScript is part of the POST ceiling.
const body = '{"assignments":[]}';
const init = { headers: { "content-type": "application/json" } };
export default {
  fetch(request) {
    if (request.method === "POST") return request.arrayBuffer().then(() => new Response(body, init));
    return new Response(body, init);
  },
};
