// A real OpenID Connect provider (panva/oidc-provider) for Ferryman's sign-in tests.
// Env: PORT, CLIENT_ID, CLIENT_SECRET, REDIRECT_URIS (comma-separated). Any login name is an account whose
// subject is that name. The login page is a one-field form; consent is granted for what the client asked.
import http from 'node:http';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.CLIENT_ID,
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: process.env.REDIRECT_URIS.split(','),
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  pkce: { required: () => true },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  conformIdTokenClaims: false,
  cookies: { keys: ['ferryman-test-cookie-key'] },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({ sub: id, email: `${id}@example.test`, email_verified: true, name: `Test ${id}` }),
  }),
});

const handle = provider.callback();

function readBody(req) {
  return new Promise((resolve, reject) => {
    let data = '';
    req.on('data', (chunk) => { data += chunk; });
    req.on('end', () => resolve(data));
    req.on('error', reject);
  });
}

async function interaction(req, res, path) {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name === 'login') {
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<form method="post" action="${path}"><input name="login"><button>Sign in</button></form>`);
      return;
    }
    const login = new URLSearchParams(await readBody(req)).get('login');
    await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
    return;
  }
  const grant = new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
  grant.addOIDCScope(details.params.scope);
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

http.createServer((req, res) => {
  const path = new URL(req.url, issuer).pathname;
  if (!path.startsWith('/interaction/')) {
    handle(req, res);
    return;
  }
  interaction(req, res, path).catch((err) => {
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end(String(err));
  });
}).listen(port, '127.0.0.1', () => console.log(`ready ${issuer}`));
