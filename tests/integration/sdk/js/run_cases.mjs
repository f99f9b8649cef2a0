// Runs many conformance cases of @upstash/qstash against one emulator in ONE node process.
// stdin: {"baseUrl", "token", "cases": [{"id", "setup": {"messages", "dlq", "groups"}, "call": "<JS arrow fn>"}]}
// stdout: a JSON list of {"id", "result", "error", "after": {"messages", "dlq", "actions"}}.
// Each case: reset the emulator, set the store up (admin API), run the SDK call, wait for bulk actions,
// read the store back. The Python test (tests/integration/sdk/test_sdk_conformance.py) asserts on the results.
import { Client } from "@upstash/qstash";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const { baseUrl, token, cases } = JSON.parse(Buffer.concat(chunks).toString("utf8"));

async function call(method, path, body, auth = false) {
  const headers = { "content-type": "application/json" };
  if (auth) headers.authorization = `Bearer ${token}`;
  const response = await fetch(baseUrl + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    redirect: "manual",
  });
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

async function waitActions() {
  for (let i = 0; i < 3000; i++) {
    const actions = await call("GET", "/_emulator/bulk-actions");
    if (!actions.some((a) => a.state === "IN_PROGRESS")) return actions;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("bulk actions still in progress after 30 s");
}

const client = new Client({ baseUrl, token, retry: { retries: 0 }, enableTelemetry: false });
const out = [];
for (const c of cases) {
  await call("POST", "/_emulator/reset");
  if (c.setup.messages.length) await call("POST", "/_emulator/messages", c.setup.messages);
  if (c.setup.dlq.length) await call("POST", "/_emulator/dlq", c.setup.dlq);
  for (const [name, urls] of Object.entries(c.setup.groups)) {
    // an emulator without URL groups: the cases that need one fail on their own checks
    await call("POST", `/v2/topics/${name}/endpoints`, { endpoints: urls.map((url) => ({ url })) }, true).catch(
      () => null,
    );
  }
  let result = null;
  let error = null;
  try {
    const fn = (0, eval)(c.call);
    result = (await fn(client)) ?? null;
  } catch (e) {
    error = String(e?.message ?? e);
  }
  const actions = await waitActions();
  out.push({
    id: c.id,
    result,
    error,
    after: {
      messages: await call("GET", "/_emulator/messages?state=all"),
      dlq: await call("GET", "/_emulator/dlq"),
      actions,
    },
  });
}
process.stdout.write(JSON.stringify(out));
