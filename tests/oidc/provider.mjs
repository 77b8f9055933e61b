// A real OpenID Provider for stint's SSO tests: panva's oidc-provider (OpenID Certified),
// configured like a company IdP. Test accounts:
//   alice / alice-password  (MFA: amr ["pwd","otp"], groups ["developers"])
//   bob   / bob-password    (no MFA: amr ["pwd"], groups [])
//   carol / carol-password  (MFA, email at another domain, groups ["developers"])
// and, all with MFA and password "<name>-password", accounts whose email_verified varies:
//   dave (the string "false"), erin (no email_verified claim), frank (the string "true"),
//   oscar (verified, email oncall.person@example.com: a name stint's configuration may hold)
// Every login page also has a Cancel button, which denies the request (access_denied).
// stint gets a refresh token at each login (as Keycloak issues them, without offline_access),
// rotated at each use (as Okta does). The test controls the provider through /admin:
//   POST /admin/accounts/<id>/disable  the account is disabled: no login, and its refresh
//                                      tokens are refused (invalid_grant)
//   POST /admin/token/down | /admin/token/up   the token endpoint answers 503, or works again
//   POST /admin/refresh-tokens/off     logins from now on get no refresh token
// The login page is a plain HTML form, so tests drive it with ordinary HTTP requests;
// consent is granted automatically, as a company IdP does for its own apps.
//
// usage: PORT=7999 REDIRECT_URI=http://127.0.0.1:7998/callback node provider.mjs
import http from 'node:http';
import crypto from 'node:crypto';
import { URLSearchParams } from 'node:url';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 7999);
const issuer = `http://127.0.0.1:${port}`;
const redirectUri = process.env.REDIRECT_URI || 'http://127.0.0.1:7998/callback';

const accounts = {
  alice: { password: 'alice-password', amr: ['pwd', 'otp'], email: 'alice@example.com', groups: ['developers'] },
  bob: { password: 'bob-password', amr: ['pwd'], email: 'bob@example.com', groups: [] },
  carol: { password: 'carol-password', amr: ['pwd', 'hwk'], email: 'carol@elsewhere.test', groups: ['developers'] },
  dave: { password: 'dave-password', amr: ['pwd', 'otp'], email: 'dave@example.com', emailVerified: 'false', groups: [] },
  erin: { password: 'erin-password', amr: ['pwd', 'otp'], email: 'erin@example.com', emailVerified: undefined, groups: [] },
  frank: { password: 'frank-password', amr: ['pwd', 'otp'], email: 'frank@example.com', emailVerified: 'true', groups: [] },
  oscar: { password: 'oscar-password', amr: ['pwd', 'otp'], email: 'oncall.person@example.com', groups: [] },
};

// email_verified as the account says: absent when set to undefined, true when not set.
function claimsOf(id) {
  const a = accounts[id];
  const claims = { sub: id, email: a.email, groups: a.groups };
  if (!('emailVerified' in a)) claims.email_verified = true;
  else if (a.emailVerified !== undefined) claims.email_verified = a.emailVerified;
  return claims;
}

// Switched by the test through /admin (below).
let tokenDown = false;
let issueRefreshTokens = true;

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: process.env.KID || `k-${Date.now()}`, use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'stint',
    client_secret: 'stint-test-secret',
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    // auth_time lets stint end its session no later than the provider's.
    require_auth_time: true,
  }],
  jwks: { keys: [signingKey] },
  pkce: { required: () => true },
  // Put scope claims (email, groups) in the ID token, as Google, Okta and Entra ID do.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  // amr and acr (RFC 8176) say how the person authenticated: stint reads MFA from them.
  claims: { openid: ['sub', 'amr', 'acr'], email: ['email', 'email_verified'], groups: ['groups'] },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  issueRefreshToken: async (ctx, client) => issueRefreshTokens && client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  findAccount: async (ctx, id) => accounts[id] && !accounts[id].disabled && {
    accountId: id,
    claims: async () => claimsOf(id),
  },
  ttl: { IdToken: 300, AuthorizationCode: 60, Interaction: 600, Session: 3600, Grant: 3600 },
});
provider.proxy = false;

const body = (req) => new Promise((resolve) => {
  let data = '';
  req.on('data', (c) => { data += c; });
  req.on('end', () => resolve(new URLSearchParams(data)));
});

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name === 'login') {
    if (action === 'abort') {
      await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'End-User aborted interaction' }, { mergeWithLastSubmission: false });
      return;
    }
    if (action !== 'login') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<form method="post" action="/interaction/${uid}/login">`
        + '<input name="login"><input name="password" type="password"><button>Sign in</button></form>'
        + `<form method="post" action="/interaction/${uid}/abort"><button>Cancel</button></form>`);
      return;
    }
    const form = await body(req);
    const account = accounts[form.get('login')];
    if (!account || account.disabled || account.password !== form.get('password')) {
      res.writeHead(401, { 'content-type': 'text/plain' });
      res.end('wrong user or password');
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: form.get('login'), amr: account.amr, acr: account.amr.length > 1 ? 'mfa' : 'pwd' } }, { mergeWithLastSubmission: false });
    return;
  }
  // Consent: granted at once for the requested scopes and claims.
  const { prompt: { details: missing }, params, session: { accountId } } = details;
  const grant = details.grantId ? await provider.Grant.find(details.grantId) : new provider.Grant({ accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: details.grantId ? {} : { grantId } }, { mergeWithLastSubmission: true });
}

// The test's controls (see the top of this file); nothing else answers under /admin.
function admin(req, res) {
  const disable = req.url.match(/^\/admin\/accounts\/([^/?]+)\/disable$/);
  if (req.method === 'POST' && disable && accounts[disable[1]]) {
    accounts[disable[1]].disabled = true;
  } else if (req.method === 'POST' && (req.url === '/admin/token/down' || req.url === '/admin/token/up')) {
    tokenDown = req.url === '/admin/token/down';
  } else if (req.method === 'POST' && req.url === '/admin/refresh-tokens/off') {
    issueRefreshTokens = false;
  } else {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('unknown admin request');
    return;
  }
  res.writeHead(204);
  res.end();
}

const callback = provider.callback();
http.createServer((req, res) => {
  if (req.url.startsWith('/admin/')) {
    admin(req, res);
    return;
  }
  if (tokenDown && req.url.startsWith('/token')) {
    res.writeHead(503, { 'content-type': 'application/json' });
    res.end('{"error":"temporarily_unavailable"}');
    return;
  }
  const m = req.url.match(/^\/interaction\/([^/?]+)(?:\/(login|abort))?/);
  if (m) {
    interaction(req, res, m[1], m[2]).catch((e) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(e));
    });
    return;
  }
  callback(req, res);
}).listen(port, '127.0.0.1', () => console.log(`oidc-provider listening on ${issuer}`));
