// The peer: oidc-provider (the OpenID-certified Node provider) configured for the workload
// Clavis is measured with — client_credentials, private_key_jwt (RS256) and
// client_secret_post clients, RS256 JWT access tokens for one resource — served over HTTPS
// with keep-alive by one worker per core (Node's cluster module), the way one would deploy
// it on this machine.
//
// Environment: PEER_PORT, PEER_ISSUER, MANIFEST (the bench manifest: same client ids and
// keys as on Clavis), TLS_CERT, TLS_KEY, WORKERS (default: all cores).
//
// Each worker keeps its own in-memory replay cache (oidc-provider's default adapter), so a
// jti is single-use per worker, not across workers: weaker than Clavis's durable, shared
// record. That favours the peer, if anything.

import cluster from 'node:cluster';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';

const API = 'https://api.bench/';
const SCOPE = 'read:things';

if (cluster.isPrimary) {
  const workers = Number(process.env.WORKERS || os.availableParallelism());
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'peer-signing-key', alg: 'RS256', use: 'sig' };
  let listening = 0;
  for (let i = 0; i < workers; i += 1) {
    cluster.fork({ PEER_SIGNING_JWK: JSON.stringify(jwk) });
  }
  cluster.on('listening', () => {
    listening += 1;
    if (listening === workers) console.log(`peer ready: ${workers} workers on ${process.env.PEER_ISSUER}`);
  });
  cluster.on('exit', (worker, code) => {
    if (code !== 0) console.error(`peer worker ${worker.process.pid} exited with ${code}`);
  });
  const stop = () => {
    for (const w of Object.values(cluster.workers)) w.kill();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  const { default: Provider, errors } = await import('oidc-provider');
  const manifest = JSON.parse(readFileSync(process.env.MANIFEST, 'utf8'));
  const clients = manifest.key_clients.map((c) => ({
    client_id: c.client_id,
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'RS256',
    jwks: { keys: [{ kty: 'RSA', n: c.n, e: c.e, kid: c.kid, alg: 'RS256', use: 'sig' }] },
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: SCOPE,
  }));
  clients.push({
    client_id: manifest.secret_client_id,
    client_secret: manifest.secret_client_secret,
    token_endpoint_auth_method: 'client_secret_post',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: SCOPE,
  });
  const provider = new Provider(process.env.PEER_ISSUER, {
    clients,
    jwks: { keys: [JSON.parse(process.env.PEER_SIGNING_JWK)] },
    scopes: [SCOPE],
    // Same path as Clavis (oidc-provider's default is /token).
    routes: { token: '/oauth/token' },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => API,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => {
          if (resource !== API) throw new errors.InvalidTarget();
          return {
            scope: SCOPE,
            audience: API,
            accessTokenTTL: 86400,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
  });
  const server = https.createServer(
    { cert: readFileSync(process.env.TLS_CERT), key: readFileSync(process.env.TLS_KEY) },
    provider.callback(),
  );
  server.keepAliveTimeout = 65_000;
  server.listen(Number(process.env.PEER_PORT), '127.0.0.1');
}
