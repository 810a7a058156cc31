// The edit loop, measured: with `cargo leptos watch` serving the app,
// changes one line of a component, of a server function and of the
// real-time layer, and records how long until a page in Chromium shows
// each change, and whether live reload reloaded the page. Each change is
// made, measured, then undone (and the undoing measured too), ROUNDS
// times. scripts/bench-edit-loop starts `watch` and runs this.
//
//   node end2end/bench/edit-loop.mjs http://127.0.0.1:3000 [rounds]
//
// Prints one line per measurement and a Markdown table of medians; exits
// with 1 when a median is over REGRESSION_SECS (a regression to fix).
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "@playwright/test";

const REGRESSION_SECS = 20;
/** Longer than this, the change counts as never shown. */
const GIVE_UP_MS = 120_000;
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const base = process.argv[2] ?? "http://127.0.0.1:3000";
const rounds = Number(process.argv[3] ?? 3);

/**
 * The three changes: a file, the line to change, what it becomes (with a
 * marker), and how the page tells the change is served.
 */
const changes = [
  {
    what: "a component (app/src/pages/home.rs: the home page's text)",
    file: "app/src/pages/home.rs",
    from: '"Everything here is live. Open this page in two browsers side by side: what "',
    to: (mark) => `"Everything here is live (${mark}). Open this page in two browsers side by side: what "`,
    // Live reload brings the new page: the text is on screen once it has
    // hydrated (a page halfway through reloading tells nothing).
    shows: async (page, mark) =>
      (await page.locator("html[data-hydrated]").count()) === 0 ? null : page.getByText(mark).isVisible(),
  },
  {
    what: "a server function (app/src/dev.rs: the dev ping's answer to a bad topic)",
    file: "app/src/dev.rs",
    from: '.ok_or_else(|| AppError::Invalid(format!("“{slug}” is not a topic name.")))',
    to: (mark) => `.ok_or_else(|| AppError::Invalid(format!("“{slug}” is not a topic name (${mark}).")))`,
    // What the page gets when it calls the server function.
    shows: (page, mark) =>
      page.evaluate(async (mark) => {
        const response = await fetch("/api/dev/ping", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ to: { topics: ["Not A Topic"] }, text: "edit loop" }),
        }).catch(() => null);
        // No answer (the server is restarting) tells nothing.
        return response ? (await response.text()).includes(mark) : null;
      }, mark),
  },
  {
    what: "the real-time layer (realtime/src/server/join_rules.rs: the refusal of an unknown room)",
    file: "realtime/src/server/join_rules.rs",
    from: 'Refusal::new("There is no such room.")',
    to: (mark) => `Refusal::new("There is no such room (${mark}).")`,
    // What the page's own WebSocket is told when it asks to join a room of
    // a kind the server does not know.
    shows: (page, mark) =>
      page.evaluate(
        (mark) =>
          new Promise((resolve) => {
            const socket = new WebSocket(`ws://${location.host}/ws`);
            const done = (shown) => {
              socket.close();
              resolve(shown);
            };
            // No answer (the server is restarting) tells nothing.
            setTimeout(() => done(null), 2000);
            socket.onerror = () => done(null);
            socket.onmessage = (message) => {
              const frame = JSON.parse(message.data);
              if (frame.type === "welcome") {
                socket.send(JSON.stringify({ type: "join", room: "nokind:1" }));
              } else if (frame.type === "refused") {
                done(frame.reason.includes(mark));
              }
            };
          }),
        mark,
      ),
  },
];

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium" });
const page = await browser.newPage();
/** When each page load (the first, then live reload's) happened. */
const loads = [];
page.on("load", () => loads.push(Date.now()));
await page.goto(base);
await page.waitForSelector("html[data-hydrated]");

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Puts `text` in `file`; returns how long until the page shows `mark` (or
 * stops showing it), and until live reload had loaded the page again
 * (`null`: it did not within 20 s of the change being shown).
 */
async function measure(change, text, mark, shown) {
  const loadsBefore = loads.length;
  const started = Date.now();
  const since = (at) => (at - started) / 1000;
  writeFileSync(join(root, change.file), text);
  let secs = Infinity;
  while (Date.now() - started < GIVE_UP_MS) {
    const now = await change.shows(page, mark).catch(() => null);
    if (now === shown) {
      secs = since(Date.now());
      break;
    }
    await sleep(100);
  }
  const waitUntil = Date.now() + 20_000;
  while (loads.length === loadsBefore && Date.now() < waitUntil) {
    await sleep(100);
  }
  const reloadSecs = loads.length > loadsBefore ? since(loads[loadsBefore]) : null;
  // The next change starts from a page that has hydrated.
  await page.waitForSelector("html[data-hydrated]").catch(() => {});
  return { secs, reloadSecs };
}

const results = changes.map(() => []);
const originals = changes.map((change) => readFileSync(join(root, change.file), "utf8"));
try {
  for (let round = 1; round <= rounds; round++) {
    for (const [index, change] of changes.entries()) {
      const original = originals[index];
      if (!original.includes(change.from)) {
        throw new Error(`${change.file} no longer has the line to change: ${change.from}`);
      }
      const mark = `edit ${round}.${index + 1}.${Date.now()}`;
      const edited = original.replace(change.from, change.to(mark));
      for (const [step, text, shown] of [
        ["changed", edited, true],
        ["undone", original, false],
      ]) {
        const result = await measure(change, text, mark, shown);
        results[index].push(result);
        const reload = result.reloadSecs === null ? "did not fire" : `reloaded the page at ${result.reloadSecs.toFixed(1)} s`;
        console.log(`round ${round}, ${change.what}, ${step}: shown at ${result.secs.toFixed(1)} s; live reload ${reload}`);
      }
    }
  }
} finally {
  changes.forEach((change, index) => writeFileSync(join(root, change.file), originals[index]));
  await browser.close();
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};
console.log("\n| One-line change to | Shown (median) | Shown (slowest) | Live reload fired | Page reloaded (median) |");
console.log("|---|---|---|---|---|");
let slow = false;
for (const [index, change] of changes.entries()) {
  const secs = results[index].map((result) => result.secs);
  const reloads = results[index].map((result) => result.reloadSecs).filter((at) => at !== null);
  slow ||= median(secs) > REGRESSION_SECS || reloads.length < secs.length;
  const reloaded = reloads.length ? `${median(reloads).toFixed(1)} s` : "—";
  console.log(
    `| ${change.what} | ${median(secs).toFixed(1)} s | ${Math.max(...secs).toFixed(1)} s | ${reloads.length} of ${secs.length} | ${reloaded} |`,
  );
}
if (slow) {
  console.error(`\nA median is over ${REGRESSION_SECS} s, or live reload did not fire: the edit loop has regressed.`);
  process.exit(1);
}
