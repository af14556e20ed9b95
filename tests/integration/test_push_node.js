// tests/integration/test_push_node.js: an independent HTTP/2 peer (node's
// built-in http2 module, h2c) for the push adapter. It records each
// request's APNs headers, verifies the ES256 JWT with node's own crypto
// (raw r||s = ieee-p1363), and answers 200 with an apns-id.
// usage: node test_push_node.js PORT_FILE OUT_FILE PUBKEY_PEM [limits]
//
// With `limits`, node also plays a strict provider: it answers after 5 ms;
// after a connection's first request it lowers SETTINGS_MAX_CONCURRENT_STREAMS
// to 1 and, once the client acknowledged, records the most streams it sees
// open at once (maxAfterAck, per line); after 25 requests it closes the
// connection gracefully (GOAWAY, in-flight streams finish).
'use strict';
const http2 = require('http2');
const fs = require('fs');
const crypto = require('crypto');
const [, , portFile, outFile, pubFile, mode] = process.argv;
const limits = mode === 'limits';
let maxAfterAck = 0;
const pub = crypto.createPublicKey(fs.readFileSync(pubFile));
const b64 = (s) => Buffer.from(s || '', 'base64url');

const server = http2.createServer();
server.on('session', (session) => {
  session.tocsin = { requests: 0, open: 0, acked: false };
});
server.on('stream', (stream, headers) => {
  const sess = stream.session.tocsin;
  sess.open++;
  sess.requests++;
  if (sess.acked && sess.open > maxAfterAck) maxAfterAck = sess.open;
  stream.on('close', () => { sess.open--; });
  if (limits && sess.requests === 1) {
    stream.session.settings({ maxConcurrentStreams: 1 }, () => { sess.acked = true; });
  }
  if (limits && sess.requests === 25) stream.session.close();
  let body = '';
  stream.on('data', (c) => { body += c; });
  stream.on('end', () => {
    const auth = headers.authorization || '';
    const [h, p, s] = auth.replace(/^bearer /, '').split('.');
    let jwtOk = false, jwtHeader = null, jwtClaims = null, payload = null;
    try {
      jwtOk = crypto.verify('sha256', Buffer.from(h + '.' + p),
        { key: pub, dsaEncoding: 'ieee-p1363' }, b64(s));
      jwtHeader = JSON.parse(b64(h));
      jwtClaims = JSON.parse(b64(p));
      payload = JSON.parse(body);
    } catch (e) { /* recorded as failures below */ }
    fs.appendFileSync(outFile, JSON.stringify({
      method: headers[':method'], path: headers[':path'], topic: headers['apns-topic'],
      collapse: headers['apns-collapse-id'], priority: headers['apns-priority'],
      pushType: headers['apns-push-type'], expiration: headers['apns-expiration'],
      authScheme: auth.split(' ')[0], jwtOk, jwtHeader, jwtClaims, payload, maxAfterAck,
    }) + '\n');
    const answer = () => {
      if (stream.destroyed) return;
      stream.respond({ ':status': 200, 'apns-id': crypto.randomUUID() });
      stream.end();
    };
    if (limits) setTimeout(answer, 5); else answer();
  });
});
server.listen(0, '127.0.0.1', () => {
  fs.writeFileSync(portFile + '.tmp', String(server.address().port));
  fs.renameSync(portFile + '.tmp', portFile);
});
process.on('SIGTERM', () => process.exit(0));
