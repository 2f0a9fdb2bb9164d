// The floor of any Node HTTP server on this machine: a bare node:http server,
// one process (no cluster), answering every request with the same 100-byte
// body once the request body has been read. The suite's router rows compare
// their CPU per request against this one's.
import http from 'node:http';

const BODY = Buffer.alloc(Number(process.env['HELLO_BODY_BYTES'] ?? 100), 0x61);

const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BODY.length });
    res.end(BODY);
  });
});
// Keep-alive as long as the load generator wants it, like the other peers.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  process.send?.({ type: 'ready', pid: process.pid, port: typeof addr === 'object' && addr ? addr.port : 0 });
});
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
