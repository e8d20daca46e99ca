// A real OpenID Connect provider (the certified oidc-provider package) for
// the sign-in tests (tests/e2e/test_oidc.py), on 127.0.0.1 only.
//
// Settings come from the environment:
//   OIDC_PORT        port to listen on (127.0.0.1)
//   OIDC_ISSUER      the issuer, e.g. http://localhost:PORT
//   OIDC_CLIENTS     JSON list of clients: [{client_id, client_secret,
//                    redirect_uris, post_logout_redirect_uris}]
//   OIDC_USERS       JSON {account: [groups...]}: anyone may sign in with
//                    any password (dev interactions), these get groups
//   OIDC_EMAILS      JSON {account: [email, verified]}
//   OIDC_KID         the kid of the signing key (a fresh RSA key per start:
//                    starting again with another kid is a key rotation)
//
// A misbehaving provider, for the tests of what the daemon refuses: POST
// /__test/mischief with JSON {"aud"?, "exp_offset"?, "iat_offset"?,
// "alg"?: "none"|"HS256"} makes the next ID tokens the token endpoint
// returns carry those claims, signed again with the provider's own key
// (or not signed at all for "none", with the client secret for HS256);
// {} restores normal answers.
//
// Sign-out (RP-initiated logout) asks the user to confirm unless the
// request carries an id_token_hint that the provider has verified (an ID
// token it issued to that client): then it ends its session at once, as
// Keycloak does.
import crypto from 'node:crypto';
import Provider from 'oidc-provider';
import * as jose from 'jose';

const port = Number(process.env.OIDC_PORT);
const issuer = process.env.OIDC_ISSUER;
const clients = JSON.parse(process.env.OIDC_CLIENTS);
const users = JSON.parse(process.env.OIDC_USERS || '{}');
const emails = JSON.parse(process.env.OIDC_EMAILS || '{}');
const kid = process.env.OIDC_KID || 'key-1';

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };

let mischief = {};

// oidc-provider has verified the id_token_hint before it gets here (an
// invalid one is an error page): with one, the form submits itself.
async function logoutSource(ctx, form) {
  const confirmed = ctx.oidc.params.id_token_hint
    ? '<script>const f = document.getElementById("op.logoutForm");'
      + ' const i = document.createElement("input"); i.type = "hidden"; i.name = "logout";'
      + ' i.value = "yes"; f.appendChild(i); f.submit();</script>'
    : '';
  ctx.body = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Sign out</title></head>
    <body><h1>Do you want to sign out from ${ctx.host}?</h1>${form}
    <button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
    <button type="submit" form="op.logoutForm">No, stay signed in</button>${confirmed}</body></html>`;
}

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [jwk] },
  claims: {
    openid: ['sub'], profile: ['preferred_username', 'name'], groups: ['groups'],
    email: ['email', 'email_verified'],
  },
  conformIdTokenClaims: false,
  pkce: { required: () => true, methods: ['S256'] },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true, logoutSource },
  },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        const [email, verified] = emails[id] || [`${id}@example.com`, false];
        return {
          sub: id, preferred_username: id, name: id, groups: users[id] || [],
          email, email_verified: verified,
        };
      },
    };
  },
  // no consent screen: every client here is the provider's own
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid profile groups email');
    grant.addOIDCClaims(['preferred_username', 'name', 'groups', 'email', 'email_verified']);
    await grant.save();
    return grant;
  },
});
provider.proxy = false;

function b64url(obj) {
  return Buffer.from(JSON.stringify(obj)).toString('base64url');
}

async function misbehave(idToken, clientSecret) {
  const claims = jose.decodeJwt(idToken);
  const now = Math.floor(Date.now() / 1000);
  if (mischief.aud !== undefined) claims.aud = mischief.aud;
  if (mischief.exp_offset !== undefined) claims.exp = now + mischief.exp_offset;
  if (mischief.iat_offset !== undefined) claims.iat = now + mischief.iat_offset;
  if (mischief.alg === 'none') return `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claims)}.`;
  if (mischief.alg === 'HS256') {
    return new jose.SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid })
      .sign(new TextEncoder().encode(clientSecret));
  }
  const key = await jose.importJWK(jwk, 'RS256');
  return new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid }).sign(key);
}

provider.use(async (ctx, next) => {
  if (ctx.path === '/__test/mischief' && ctx.method === 'POST') {
    let body = '';
    for await (const chunk of ctx.req) body += chunk;
    mischief = JSON.parse(body || '{}');
    ctx.body = { mischief };
    return;
  }
  await next();
  if (ctx.path === '/token' && ctx.status === 200 && ctx.body && ctx.body.id_token &&
      Object.keys(mischief).length > 0) {
    const client = clients[0];
    ctx.body = { ...ctx.body, id_token: await misbehave(ctx.body.id_token, client.client_secret) };
  }
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc provider listening at ${issuer} (kid ${kid})`);
});
