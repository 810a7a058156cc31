// A server of a test's own, on its own port and database, for tests that
// must stop and start it, need it empty or start it with settings of their
// own. The suite's shared server is left alone.
// @chat-begin
// Also: a Redis server of a test's own, to stop and start again.
// @chat-end
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { rmSync } from "node:fs";
// @chat-begin
import { connect } from "node:net";
// @chat-end

export class PrivateServer {
  private process: ChildProcess | undefined;

  /**
   * `database` is an SQLite file; `env` adds to (or replaces) the server's
   * environment: a `DATABASE_URL` there wins over `database`.
   */
  constructor(
    readonly port: number,
    readonly database: string,
    readonly env: Record<string, string> = {},
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
        // Tests sign up, log in and write from 127.0.0.1 more often than the
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
        ...this.env,
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

// @chat-begin
/** A `redis-server` of a test's own (it keeps nothing on disk). */
export class PrivateRedis {
  private process: ChildProcess | undefined;

  constructor(readonly port: number) {}

  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts it, and waits until it listens. */
  async start() {
    this.process = spawn(
      "redis-server",
      ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      { stdio: "ignore" },
    );
    for (let attempt = 0; attempt < 100; attempt++) {
      if (await listening(this.port)) {
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`redis-server on port ${this.port} did not start (is it installed?)`);
  }

  /** Stops it at once (SIGKILL), and waits. */
  async stop() {
    const redis = this.process;
    if (redis && redis.exitCode === null && redis.signalCode === null) {
      redis.kill("SIGKILL");
      await once(redis, "exit");
    }
  }
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
// @chat-end
