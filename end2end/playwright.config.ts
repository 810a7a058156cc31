// Playwright runs the end-to-end suite against the real server binary, in
// Debian's Chromium (never a downloaded browser).
//
// Build first (`cargo leptos build`); `scripts/test` does both. Playwright
// starts the server itself on its own port with a fresh database, and waits
// for /health before the first test.
import { defineConfig, devices } from "@playwright/test";

const port = Number(process.env.E2E_PORT ?? 3100);
const baseURL = `http://127.0.0.1:${port}`;

export default defineConfig({
  testDir: "./tests",
  // @chat-begin
  // The README's screenshots (tests/screenshots.spec.ts) are compared with
  // the pictures in docs/; `scripts/screenshots` takes them again.
  snapshotPathTemplate: "../docs/screenshots/{arg}{ext}",
  // @chat-end
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: true,
  forbidOnly: !!process.env.CI,
  // Two cores: more workers than that only adds contention.
  workers: process.env.CI ? 1 : 2,
  reporter: [["list"], ["html", { open: "never" }]],
  use: {
    baseURL,
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    },
  },
  projects: [{ name: "chromium", use: { ...devices["Desktop Chrome"] } }],
  webServer: {
    // Run from the repository root, where target/ is.
    cwd: "..",
    command: "rm -rf target/e2e && exec target/debug/server",
    url: `${baseURL}/health`,
    // Never test a server left over from an earlier build.
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: "pipe",
    stderr: "pipe",
    env: {
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      LEPTOS_SITE_ROOT: "target/site",
      // scripts/test runs the suite a second time on a PostgreSQL database.
      DATABASE_URL: process.env.E2E_DATABASE_URL ?? "sqlite://target/e2e/app.db",
      RUST_LOG: process.env.RUST_LOG ?? "warn",
      // Every test signs up, logs in and writes from 127.0.0.1: far more than the
      // per-address defaults allow a real client.
      LIMIT_SIGN_UP_PER_ADDRESS: "1000/min",
      LIMIT_LOG_IN_PER_ADDRESS: "1000/min",
      LIMIT_ANNOUNCE_PER_ADDRESS: "1000/min",
      // @chat-begin
      LIMIT_POST_PER_ADDRESS: "1000/min",
      LIMIT_CREATE_ROOM_PER_ADDRESS: "1000/min",
      LIMIT_TYPING_PER_ADDRESS: "1000/min",
      LIMIT_RENAME_PER_ADDRESS: "1000/min",
      // @chat-end
    },
  },
});
