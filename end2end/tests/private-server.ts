// A server of a test's own, on its own port and database, for tests that
// must stop and start it (a restart) or need it empty (the screenshots).
// The suite's shared server is left alone.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { rmSync } from "node:fs";

export class PrivateServer {
  private process: ChildProcess | undefined;

  constructor(
    readonly port: number,
    readonly database: string,
  ) {}

  get baseURL() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Deletes the database: the next start begins empty. */
  reset() {
    for (const suffix of ["", "-wal", "-shm"]) {
      rmSync(`../${this.database}${suffix}`, { force: true });
    }
  }

  /** Starts the built server and waits until it answers /health. */
  async start() {
    this.process = spawn("target/debug/server", [], {
      cwd: "..",
      env: {
        ...process.env,
        LEPTOS_SITE_ADDR: `127.0.0.1:${this.port}`,
        LEPTOS_SITE_ROOT: "target/site",
        DATABASE_URL: `sqlite://${this.database}`,
        RUST_LOG: "warn",
        // Tests sign up and log in from 127.0.0.1 more often than the
        // per-address defaults allow a real client.
        LIMIT_SIGN_UP_PER_ADDRESS: "1000/min",
        LIMIT_LOG_IN_PER_ADDRESS: "1000/min",
      },
      stdio: ["ignore", "inherit", "inherit"],
    });
    for (let attempt = 0; attempt < 200; attempt++) {
      try {
        if ((await fetch(`${this.baseURL}/health`)).ok) {
          return;
        }
      } catch {
        // Not listening yet.
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await this.stop();
    throw new Error(`the server on port ${this.port} did not start`);
  }

  /** Stops it the way a service manager would (SIGTERM), and waits. */
  async stop() {
    const server = this.process;
    if (server && server.exitCode === null && server.signalCode === null) {
      server.kill("SIGTERM");
      await once(server, "exit");
    }
  }
}
