/**
 * A bare `Deno.serve` on a free loopback port, for the canary in
 * `tests/http/deno_serve_emfile_canary_test.ts`: prints `listening <port>` once it listens, and
 * `finished: <reason>` if the server ever stops by itself.
 *
 * @module
 */

const server = Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => console.log(`listening ${port}`),
}, () => new Response("ok\n"));

server.finished.then(
  () => console.log("finished: closed"),
  (error: Error) => console.log(`finished: ${error.message}`),
);
