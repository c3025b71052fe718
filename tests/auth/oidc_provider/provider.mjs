// A real OpenID Connect provider (panva/oidc-provider 9.x) for labdeck's sign-on tests.
//
//   node provider.mjs --port 9010 --client-id labdeck --client-secret s3cret \
//        --redirect-uri http://127.0.0.1/auth/oidc/callback [--redirect-uri ...] \
//        [--key-id ID] [--clock-skew SECONDS] [--code-ttl SECONDS]
//
// Every option may come from the environment instead: OIDC_PORT, OIDC_CLIENT_ID,
// OIDC_CLIENT_SECRET, OIDC_REDIRECT_URIS (comma-separated), OIDC_KEY_ID,
// OIDC_CLOCK_SKEW_S, OIDC_CODE_TTL_S. Each start signs with a new RSA key (named --key-id, else a random
// name), so a restart is a key rotation. --clock-skew runs the provider's clock that many
// seconds ahead of the machine's (negative: behind); --code-ttl is how long an
// authorization code may be redeemed (60 s by default). The issuer is
// http://127.0.0.1:<port>. When every redirect URI is an http loopback URI the client is
// registered as a native application, so the provider accepts it on any port (RFC 8252
// section 7.3): labdeck's test servers pick their port when they start. The path must
// still match exactly.
//
// Logins go through the built-in development pages (devInteractions): the login form's
// "login" field names an account of ACCOUNTS below (the password is not checked); any
// other name is refused.

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Provider } from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    'redirect-uri': { type: 'string', multiple: true },
    'key-id': { type: 'string' },
    'clock-skew': { type: 'string' },
    'code-ttl': { type: 'string' },
  },
});

const port = Number(args.port ?? process.env.OIDC_PORT ?? 9010);
const clientId = args['client-id'] ?? process.env.OIDC_CLIENT_ID ?? 'labdeck';
const clientSecret = args['client-secret'] ?? process.env.OIDC_CLIENT_SECRET ?? 'labdeck-test-secret';
const redirectUris = args['redirect-uri']
  ?? (process.env.OIDC_REDIRECT_URIS ?? 'http://127.0.0.1/auth/oidc/callback').split(',').filter(Boolean);
const keyId = args['key-id'] ?? process.env.OIDC_KEY_ID ?? `test-${randomUUID()}`;
const clockSkewS = Number(args['clock-skew'] ?? process.env.OIDC_CLOCK_SKEW_S ?? 0);
const codeTtlS = Number(args['code-ttl'] ?? process.env.OIDC_CODE_TTL_S ?? 60);
const issuer = `http://127.0.0.1:${port}`;

if (clockSkewS) {
  const machineNow = Date.now;
  Date.now = () => machineNow() + clockSkewS * 1000; // what the provider stamps tokens with (iat, exp)
}

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: keyId, alg: 'RS256', use: 'sig' };

// The accounts, keyed by login name; the login name is also the subject (sub).
const ACCOUNTS = {
  alice: { email: 'alice@example.test', email_verified: true, name: 'Alice Example', groups: ['ml-team', 'everyone'] },
  bob: { email: 'bob@example.test', email_verified: true, name: 'Bob Example', groups: ['everyone'] },
  carol: { email: 'carol@corp.example', email_verified: true, name: 'Carol Corp', groups: ['admins'], hd: 'corp.example' },
  dave: { email: 'dave@corp.example', email_verified: true, name: 'Dave Personal', groups: [] },
  erin: { email: 'erin@example.test', email_verified: false, name: 'Erin Unverified', groups: ['everyone'] },
  // another account (another sub) claiming bob's address
  mallory: { email: 'bob@example.test', email_verified: true, name: 'Not Bob', groups: ['everyone'] },
};

const loopbackOnly = redirectUris.every((uri) => {
  const { protocol, hostname } = new URL(uri);
  return protocol === 'http:' && (hostname === '127.0.0.1' || hostname === '[::1]');
});

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: redirectUris,
    application_type: loopbackOnly ? 'native' : 'web',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  async findAccount(_ctx, sub) {
    const account = ACCOUNTS[sub];
    if (!account) return undefined;
    return { accountId: sub, async claims() { return { sub, ...account }; } };
  },
  claims: {
    openid: ['sub', 'hd'],
    email: ['email', 'email_verified'],
    profile: ['name', 'groups'],
  },
  jwks: { keys: [signingKey] },
  conformIdTokenClaims: false, // scope claims (email, name, groups) go into the ID token too
  pkce: { required: () => true },
  cookies: { keys: ['labdeck-test-cookie-key'] },
  features: { devInteractions: { enabled: true } },
  ttl: { AccessToken: 600, AuthorizationCode: codeTtlS, IdToken: 600, Interaction: 600, Session: 600, Grant: 600 },
});

// Show why a request was refused (a wrong code, a wrong verifier...) in the test's output.
for (const event of ['grant.error', 'authorization.error', 'server_error']) {
  provider.on(event, (_ctx, error) => console.error(`${event}: ${error.message} ${error.error_description ?? ''}`));
}

provider.listen(port, '127.0.0.1', () => console.log(`listening on ${issuer}`));
