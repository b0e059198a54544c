// The TypeScript MCP SDK client (@modelcontextprotocol/sdk, Streamable HTTP client transport) against one
// MCP URL: connect, list the tools, call a few of them, print what came back as one JSON object on stdout.
//
//   MCPS_NODE_MODULES=<node_modules holding @modelcontextprotocol/sdk> node ts_client.mjs URL
//
// test_ts_client.py runs it against each conformance target (server.py directly; through the gateway later).
// Exit status: 0 with the JSON on stdout, 1 with the error on stderr, 3 when it took longer than TIMEOUT_MS.

import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const TIMEOUT_MS = 30_000;
const timer = setTimeout(() => {
  process.stderr.write(`ts_client: no answer within ${TIMEOUT_MS} ms\n`);
  process.exit(3);
}, TIMEOUT_MS);

const [url] = process.argv.slice(2);
const modules = process.env.MCPS_NODE_MODULES;
if (!url || !modules) {
  process.stderr.write('usage: MCPS_NODE_MODULES=... node ts_client.mjs URL\n');
  process.exit(2);
}

// The SDK lives in the npm cache directory, not next to this file: import its ESM build by path.
const sdk = (file) => import(pathToFileURL(join(modules, '@modelcontextprotocol', 'sdk', 'dist', 'esm', file)).href);

async function main() {
  const { Client } = await sdk('client/index.js');
  const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');
  const { ElicitRequestSchema } = await sdk('types.js');

  const client = new Client({ name: 'mcps-ts-client-check', version: '1.0.0' }, { capabilities: { elicitation: {} } });
  const elicitations = [];
  client.setRequestHandler(ElicitRequestSchema, async (request) => {
    elicitations.push(request.params);
    return { action: 'accept', content: { username: 'ts-client', email: 'ts-client@example.com' } };
  });

  const transport = new StreamableHTTPClientTransport(new URL(url));
  await client.connect(transport);
  const out = { protocolVersion: transport.protocolVersion, server: client.getServerVersion() };

  out.tools = (await client.listTools()).tools.map((tool) => tool.name);
  out.simpleText = await client.callTool({ name: 'test_simple_text', arguments: {} });
  const progress = [];
  out.withProgress = await client.callTool({ name: 'test_tool_with_progress', arguments: {} }, undefined, {
    onprogress: (update) => progress.push(update),
  });
  out.progress = progress;
  out.error = await client.callTool({ name: 'test_error_handling', arguments: {} });
  out.elicitation = await client.callTool({ name: 'test_elicitation', arguments: { message: 'Who are you?' } });
  out.elicitations = elicitations;

  await client.close();
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().then(
  () => {
    clearTimeout(timer);
  },
  (error) => {
    process.stderr.write(`ts_client: ${error?.stack ?? error}\n`);
    process.exit(1);
  },
);
