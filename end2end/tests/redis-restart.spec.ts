// A Redis restart under two processes on one PostgreSQL database: a page
// on one process misses what is posted on the other while Redis is away,
// is told so when Redis is back, and ends with exactly the messages in the
// database, in order, none twice.
//
// Runs in the PostgreSQL pass of scripts/test (two processes cannot share
// the SQLite file of the first pass), with a Redis server of its own on
// port 3190 and its own processes on ports 3104 and 3105.
import {
  test,
  expect,
  uniqueName,
  signUp,
  createRoom,
  enterRoom,
  messages,
  post,
  currentUser,
} from "./fixtures";
import { PrivateRedis, PrivateServer } from "./private-server";

const database = process.env.E2E_DATABASE_URL;
const redis = new PrivateRedis(Number(process.env.E2E_REDIS_PORT ?? 3190));
const channel = `e2e.redis-restart.${process.pid}`;
const processEnv = {
  DATABASE_URL: database ?? "",
  REDIS_URL: redis.url,
  REDIS_CHANNEL: channel,
};
const a = new PrivateServer(Number(process.env.E2E_REDIS_A_PORT ?? 3104), "unused", processEnv);
const b = new PrivateServer(Number(process.env.E2E_REDIS_B_PORT ?? 3105), "unused", processEnv);

test.describe.configure({ mode: "serial" });

test("a page on the other process ends with every message after a Redis restart", async ({
  browser,
  errors,
}) => {
  test.skip(!database, "needs PostgreSQL: runs in the PostgreSQL pass of scripts/test");
  test.setTimeout(90_000);
  await redis.start();
  await a.start();
  await b.start();
  try {
    const adaContext = await browser.newContext({ baseURL: a.baseURL });
    const ada = await adaContext.newPage();
    const graceContext = await browser.newContext({ baseURL: b.baseURL });
    const grace = await graceContext.newPage();
    for (const page of [ada, grace]) {
      page.on("pageerror", (error) => errors.push(`uncaught: ${error.message}`));
    }
    await signUp(ada, uniqueName("ada"));
    await expect(currentUser(ada)).toBeVisible();
    await signUp(grace, uniqueName("grace"));
    await expect(currentUser(grace)).toBeVisible();
    const url = new URL(await createRoom(ada, uniqueName("room")));
    await enterRoom(grace, url.pathname);

    // Ada posts every 100 ms through process A; Redis goes away and comes
    // back meanwhile.
    const posted: string[] = [];
    const postSome = async (count: number) => {
      for (let i = 0; i < count; i++) {
        const text = `message ${posted.length + 1}`;
        await post(ada, text);
        posted.push(text);
        await ada.waitForTimeout(100);
      }
    };
    await postSome(5);
    await expect(messages(grace)).toHaveText(posted);
    await redis.stop();
    await postSome(10);
    await redis.start();
    await postSome(10);

    // Grace's page was told what it missed and fetched it again; both
    // pages show exactly what was stored, in order.
    await expect(messages(grace)).toHaveText(posted, { timeout: 30_000 });
    await expect(messages(ada)).toHaveText(posted);
    await graceContext.close();
    await adaContext.close();
  } finally {
    await a.stop();
    await b.stop();
    await redis.stop();
  }
});
