// A server restart: open pages notice, reconnect by themselves, re-join
// their rooms, and load what they missed while they were away.
//
// This test runs its own server (port 3101, its own database), so it can
// stop and start it; the suite's shared server is left alone.
import {
  test,
  expect,
  uniqueName,
  signUp,
  createRoom,
  enterRoom,
  expectInRoom,
  expectLive,
  messages,
  post,
  currentUser,
} from "./fixtures";
import { PrivateServer } from "./private-server";

const server = new PrivateServer(Number(process.env.E2E_RESTART_PORT ?? 3101), "target/e2e/restart.db");

test.use({ baseURL: server.baseURL });
// One worker for the whole file: there is one server to share.
test.describe.configure({ mode: "serial" });

test("after a restart, pages reconnect, re-join their rooms and load what they missed", async ({
  browser,
  errors,
}) => {
  test.setTimeout(90_000);
  server.reset();
  await server.start();
  try {
    // Ada's tab can be kept from reconnecting: her socket goes through a
    // route that either passes it to the server or closes it at once.
    let adaMayConnect = true;
    const adaContext = await browser.newContext();
    const ada = await adaContext.newPage();
    await ada.routeWebSocket(/\/ws(\?|$)/, (socket) => {
      if (adaMayConnect) {
        socket.connectToServer();
      } else {
        socket.close();
      }
    });
    const graceContext = await browser.newContext();
    const grace = await graceContext.newPage();
    for (const page of [ada, grace]) {
      page.on("pageerror", (error) => errors.push(`uncaught: ${error.message}`));
    }

    await signUp(ada, uniqueName("ada"));
    await expect(currentUser(ada)).toBeVisible();
    await signUp(grace, uniqueName("grace"));
    await expect(currentUser(grace)).toBeVisible();
    const url = await createRoom(ada, uniqueName("room"));
    await enterRoom(grace, url);
    await post(ada, "before the restart");
    await expect(messages(grace)).toHaveText(["before the restart"]);

    // The server goes away: both pages say so.
    await server.stop();
    for (const page of [ada, grace]) {
      await expect(page.getByTestId("connection-state")).toHaveAttribute("data-state", "reconnecting");
    }

    // It comes back; Grace's page reconnects and re-joins by itself, and
    // posts while Ada's is still away.
    adaMayConnect = false;
    await server.start();
    await expectLive(grace);
    await expectInRoom(grace);
    await post(grace, "while you were away");
    await expect(messages(grace)).toHaveText(["before the restart", "while you were away"]);
    await expect(ada.getByTestId("connection-state")).toHaveAttribute("data-state", "reconnecting");

    // Ada's page gets through: it re-joins, and loads the message it missed.
    adaMayConnect = true;
    await expectLive(ada);
    await expectInRoom(ada);
    await expect(messages(ada)).toHaveText(["before the restart", "while you were away"], { timeout: 40_000 });

    // And it is live again.
    await post(grace, "welcome back");
    await expect(messages(ada)).toHaveText(["before the restart", "while you were away", "welcome back"]);
    await adaContext.close();
    await graceContext.close();
  } finally {
    await server.stop();
  }
});
