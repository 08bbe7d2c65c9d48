// Runs a plan of calls through the unmodified official Node SDK (authing-node-sdk) and prints the results.
//
// Input (stdin, JSON): {host, socketUri, accessKeyId, accessKeySecret, steps: [{name, method, args, client?}],
// subscription?: {code, trigger: {url, body}}}. A string argument "$step.path.to.value" is replaced by that
// part of an earlier step's result. Steps run in order; a throwing step records {error}. `client: "bad"` uses a
// client with a wrong secret. The subscription (if any) opens the SDK's event socket, waits until the emulator
// reports the subscriber, POSTs the trigger to the emulator's control API and records the first message.
// Output (stdout, JSON): {results: {name: result}, subscription?: {message} | {error}, badSubscription?: {...}}.
"use strict";

const fs = require("fs");
const { ManagementClient } = require("authing-node-sdk");

const plan = JSON.parse(fs.readFileSync(0, "utf8"));

function client(secret) {
  return new ManagementClient({
    accessKeyId: plan.accessKeyId,
    accessKeySecret: secret,
    host: plan.host,
    socketUri: plan.socketUri,
    lang: "en-US",
    retryTimes: 0,
  });
}

const good = client(plan.accessKeySecret);
const bad = client(plan.accessKeySecret + "-wrong");
const results = {};

function lookup(reference) {
  const [step, ...path] = reference.slice(1).split(".");
  let value = results[step];
  for (const key of path) {
    value = value === undefined || value === null ? undefined : value[key];
  }
  return value;
}

function resolve(value) {
  if (typeof value === "string" && value.startsWith("$")) return lookup(value);
  if (Array.isArray(value)) return value.map(resolve);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, resolve(item)]));
  }
  return value;
}

function withTimeout(promise, ms, what) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms)),
  ]);
}

async function waitForSubscriber(code) {
  for (let attempt = 0; attempt < 100; attempt++) {
    const answer = await (await fetch(`${plan.host}/_emulator/events`)).json();
    if ((answer.subscribers || {})[code] >= 1) return;
    await new Promise((resolveWait) => setTimeout(resolveWait, 50));
  }
  throw new Error(`no subscriber to ${code} appeared`);
}

async function subscribe(sdk, subscription) {
  const message = new Promise((resolveMessage, rejectMessage) => {
    sdk.sub(subscription.code, (text) => resolveMessage(text), (error) => rejectMessage(new Error(String(error))));
  });
  if (subscription.trigger) {
    await waitForSubscriber(subscription.code);
    await fetch(subscription.trigger.url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(subscription.trigger.body),
    });
  }
  return { message: await withTimeout(message, 10000, `a message on ${subscription.code}`) };
}

async function main() {
  for (const step of plan.steps) {
    const sdk = step.client === "bad" ? bad : good;
    try {
      const args = step.args === undefined ? [] : [resolve(step.args)];
      results[step.name] = await sdk[step.method](...args);
    } catch (error) {
      results[step.name] = { error: String(error) };
    }
  }
  const output = { results };
  if (plan.subscription) {
    try {
      output.subscription = await subscribe(good, plan.subscription);
    } catch (error) {
      output.subscription = { error: String(error) };
    }
    try {
      output.badSubscription = await subscribe(bad, { code: plan.subscription.code });
    } catch (error) {
      output.badSubscription = { error: String(error) };
    }
  }
  process.stdout.write(JSON.stringify(output));
  process.exit(0);
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error));
  process.exit(1);
});
