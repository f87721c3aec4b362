/*
 * A real OpenID provider (panva's certified oidc-provider) for authgate's tests.
 *
 * Configured by one JSON file named in OIDC_HARNESS_CONFIG:
 *   { "port": 0, "issuer": "http://127.0.0.1:PORT", "jwks": {"keys": [...]},
 *     "clients": [oidc-provider client metadata + optional "id_token_ttl"],
 *     "accounts": {"login": {"sub": "...", "email": "...", "email_verified": true, "roles": [...]}},
 *     "mixup": {"path": "/mixup", "issuer_of": "http://other-provider"} }
 *
 * Interactions are a minimal form (no script): GET /interaction/<uid> shows it, POST
 * /interaction/<uid>/login with `login` signs in as that account and grants every requested
 * scope, so an HTTP client can sign in by submitting one form. Unknown logins get the form again.
 * The first line on stdout is `listening <port>` once the socket is bound.
 */
import fs from 'node:fs';
import http from 'node:http';
import querystring from 'node:querystring';

import Provider from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.env.OIDC_HARNESS_CONFIG, 'utf8'));

const accounts = config.accounts || {};
const bySub = Object.fromEntries(Object.values(accounts).map((a) => [a.sub, a]));
const ttlByClient = Object.fromEntries(
  (config.clients || []).filter((c) => c.id_token_ttl).map((c) => [c.client_id, c.id_token_ttl]),
);
const clients = (config.clients || []).map((c) => {
  const copy = { ...c };
  delete copy.id_token_ttl;
  return copy;
});

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

const provider = new Provider(config.issuer, {
  clients,
  jwks: config.jwks,
  cookies: { keys: ['authgate-harness-cookie-key'] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username', 'roles', 'groups'],
  },
  conformIdTokenClaims: false, // claims in the ID token too, as many providers do
  // HS256 too (oidc-provider 8 offers no `none`), so the tests can show a relying party refusing it.
  enabledJWA: { idTokenSigningAlgValues: ['RS256', 'PS256', 'ES256', 'EdDSA', 'HS256'] },
  pkce: { required: () => false, methods: ['S256'] },
  features: {
    devInteractions: { enabled: false },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        ctx.body = `<!DOCTYPE html><html><body>${form}
          <button type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>
          </body></html>`;
      },
    },
  },
  ttl: {
    IdToken(ctx, token, client) {
      // A negative `id_token_ttl` issues ID tokens that are already expired.
      return (client && ttlByClient[client.clientId]) || 3600;
    },
  },
  interactions: {
    url(ctx, interaction) {
      return `/interaction/${interaction.uid}`;
    },
  },
  async findAccount(ctx, sub) {
    const account = bySub[sub];
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { ...account };
      },
    };
  },
});
provider.proxy = true;

function form(uid, error) {
  return `<!DOCTYPE html><html><body>
    ${error ? `<p class="error">${escapeHtml(error)}</p>` : ''}
    <form method="post" action="/interaction/${escapeHtml(uid)}/login">
      <input name="login" autocomplete="off"><button type="submit">Sign in</button>
    </form></body></html>`;
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return querystring.parse(Buffer.concat(chunks).toString('utf8'));
}

async function interaction(req, res) {
  const match = /^\/interaction\/([^/]+)(\/login)?$/.exec(req.url.split('?')[0]);
  const details = await provider.interactionDetails(req, res);
  if (!match[2] || req.method !== 'POST') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(form(details.uid));
    return;
  }
  const body = await readBody(req);
  const account = accounts[body.login];
  if (!account) {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(form(details.uid, 'unknown account'));
    return;
  }
  const { params } = details;
  const grant = new provider.Grant({ accountId: account.sub, clientId: params.client_id });
  grant.addOIDCScope(String(params.scope || 'openid'));
  const grantId = await grant.save();
  await provider.interactionFinished(
    req,
    res,
    { login: { accountId: account.sub }, consent: { grantId } },
    { mergeWithLastSubmission: false },
  );
}

// An issuer whose discovery document names another provider's endpoints (an "IdP mix-up"):
// the tokens then come from that other issuer, which a relying party must refuse.
async function mixup(req, res) {
  const upstream = await fetch(`${config.mixup.issuer_of}/.well-known/openid-configuration`);
  const metadata = await upstream.json();
  metadata.issuer = config.issuer + config.mixup.path;
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(metadata));
}

const callback = provider.callback();
const server = http.createServer((req, res) => {
  const path = req.url.split('?')[0];
  let handler = null;
  if (path.startsWith('/interaction/')) handler = interaction;
  else if (config.mixup && path === `${config.mixup.path}/.well-known/openid-configuration`) handler = mixup;
  if (!handler) {
    callback(req, res);
    return;
  }
  handler(req, res).catch((err) => {
    res.writeHead(400, { 'content-type': 'text/plain' });
    res.end(`interaction failed: ${err.message}`);
  });
});

server.listen(config.port || 0, '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
