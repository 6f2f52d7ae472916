// A real OIDC provider for the tests: oauth2-mock-server on 127.0.0.1, its issuer under a
// path prefix (Dex serves under /dex). Tokens come from a client_credentials POST to
// <issuer>/token; extra form fields become claims (groups is comma-separated, expires_in sets
// exp, email_verified=true|false becomes a boolean; a client in Basic auth gets the verified
// email <client>@clients.example.com and group machines).
// GET <prefix>/stats tells how often the key set was fetched.
// Usage: node provider.mjs PORT PREFIX
import http from 'node:http';
import { OAuth2Server } from 'oauth2-mock-server';

const [port, prefix = ''] = [Number(process.argv[2]), process.argv[3] ?? ''];
const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');
server.issuer.url = `http://127.0.0.1:${port}${prefix}`;
const claims = [
  'email', 'name', 'groups', 'repository', 'repository_id', 'repository_owner_id', 'ref',
  'environment', 'sub', 'iss', 'email_verified',
];
server.service.on('beforeTokenSigning', (token, req) => {
  for (const name of claims) {
    if (req.body[name] === undefined) continue;
    const value = req.body[name];
    token.payload[name] =
      name === 'groups' ? value.split(',') : name === 'email_verified' ? value === 'true' : value;
  }
  // requests-oauthlib sends the audience as 'audience' and the client in Basic auth.
  if (req.body.audience !== undefined) token.payload.aud = req.body.audience;
  const basic = req.headers.authorization ?? '';
  if (basic.startsWith('Basic ')) {
    const client = Buffer.from(basic.slice(6), 'base64').toString().split(':')[0];
    token.payload.email = `${decodeURIComponent(client)}@clients.example.com`;
    token.payload.groups = ['machines'];
    token.payload.email_verified = true;
  }
  if (req.body.expires_in !== undefined) {
    token.payload.exp = Math.floor(Date.now() / 1000) + Number(req.body.expires_in);
  }
});
let jwksFetches = 0;
const handler = server.service.requestHandler;
http.createServer((req, res) => {
  if (req.url === `${prefix}/stats`) {
    res.setHeader('content-type', 'application/json');
    return res.end(JSON.stringify({ jwks: jwksFetches }));
  }
  if (prefix && req.url.startsWith(`${prefix}/`)) req.url = req.url.slice(prefix.length);
  if (req.url === '/jwks') jwksFetches += 1;
  handler(req, res);
}).listen(port, '127.0.0.1', () => console.log('ready'));
