// The hooks no other page uses, on the debug-only /dev/realtime page:
// use_event_once, use_latest, and handlers that fail or panic without
// stopping the others. A server of its own: announcements from other tests
// would change the counts.
import { test, expect, gotoHydrated, expectLive } from "./fixtures";
import { PrivateServer } from "./private-server";

const server = new PrivateServer(Number(process.env.E2E_HOOKS_PORT ?? 3103), "target/e2e/hooks.db");

test.use({ baseURL: server.baseURL });
// One worker for the whole file: there is one server to share.
test.describe.configure({ mode: "serial" });
test.beforeAll(async () => {
  server.reset();
  await server.start();
});
test.afterAll(async () => {
  await server.stop();
});

/** What a failing or panicking handler logs: expected here, and nothing else. */
const expectedFailures = ["a handler panicked on purpose", "uncaught: unreachable", "this handler refuses error announcements"];

test("once, latest, and handlers that fail without stopping the others", async ({ people, errors }) => {
  // Announcing takes a logged-in user.
  const { page } = await people.signedUp("announcer");
  await gotoHydrated(page, "/dev/realtime");
  await expectLive(page);
  const announce = async (message: string, isError = false) => {
    await page.getByLabel("Announcement").fill(message);
    await page.getByLabel("Mark it as an error").setChecked(isError);
    await page.getByRole("button", { name: "Announce" }).click();
    await expect(page.getByTestId("latest")).toHaveText(message);
  };

  await announce("one");
  await expect(page.getByTestId("first")).toHaveText("one");
  await expect(page.getByTestId("before")).toHaveText("1");
  await expect(page.getByTestId("after")).toHaveText("1");

  // The third handler panics: the fourth still runs.
  await announce("panic");
  await expect(page.getByTestId("before")).toHaveText("2");
  await expect(page.getByTestId("after")).toHaveText("2");

  // The second handler fails: the others still run.
  await announce("marked as an error", true);
  await expect(page.getByTestId("after")).toHaveText("3");

  // Everything goes on working; the once handler kept the first only.
  await announce("four");
  await expect(page.getByTestId("before")).toHaveText("4");
  await expect(page.getByTestId("after")).toHaveText("4");
  await expect(page.getByTestId("first")).toHaveText("one");

  const unexpected = errors.filter((error) => !expectedFailures.some((expected) => error.includes(expected)));
  expect(errors.length, "the panic and the failure were reported").toBeGreaterThan(unexpected.length);
  errors.splice(0, errors.length, ...unexpected);
});

test("a refused join reaches the page with its reason, and an allowed one joins", async ({ page, people }) => {
  // A visitor may not follow topics.
  await gotoHydrated(page, "/dev/realtime");
  await expectLive(page);
  await expect(page.getByTestId("room-status")).toHaveText("Refused: Log in to follow a topic.");

  // A logged-in user may.
  const ada = await people.signedUp("ada");
  await gotoHydrated(ada.page, "/dev/realtime");
  await expectLive(ada.page);
  await expect(ada.page.getByTestId("room-status")).toHaveText("Joined");
});

test("a room name too long for the protocol is refused by the tab itself, never sent", async ({ people }) => {
  const ada = await people.signedUp("ada");
  let opened = 0;
  const sentLong: string[] = [];
  ada.page.on("websocket", (socket) => {
    opened += 1;
    socket.on("framesent", (frame) => {
      if (String(frame.payload).includes("topic:xxxxxxxx")) sentLong.push(String(frame.payload).slice(0, 40));
    });
  });
  // 300 bytes: a frame the server would answer with an error the page never
  // sees (the status would stay "Joining"); 3,000: past the server's frame
  // limit, which closes the connection, and the tab would reconnect and
  // join again, for ever.
  for (const length of [300, 3000]) {
    opened = 0;
    await gotoHydrated(ada.page, `/dev/realtime?topic=${"x".repeat(length)}`);
    await expectLive(ada.page);
    await expect(ada.page.getByTestId("asked-room-status")).toHaveText("Refused: Room names are at most 256 bytes.");
    // Time for a closed connection to be opened again (the first retry
    // comes within half a second).
    await ada.page.waitForTimeout(1500);
    await expectLive(ada.page);
    expect(opened, `one connection for a name of ${length} bytes`).toBe(1);
  }
  expect(sentLong, "no frame carried the long name").toEqual([]);
  // The page's own topic, "lab", joined; the long one not counted.
  await expect(ada.page.getByTestId("room-status")).toHaveText("Joined");
  await expect(ada.page.getByTestId("connection-state")).toHaveAttribute("data-memberships", "1");
});

test("a component mounted from an older position gets the events the tab heard since, and no handler gets one twice", async ({ people }) => {
  const { page } = await people.signedUp("reader");
  await gotoHydrated(page, "/dev/realtime");
  await expectLive(page);
  const announce = async (message: string) => {
    await page.getByLabel("Announcement").fill(message);
    await page.getByRole("button", { name: "Announce" }).click();
    await expect(page.getByTestId("latest")).toHaveText(message);
  };
  const before = Number(await page.getByTestId("before").textContent());

  // Data read here (a position), then two announcements the tab hears
  // before the component that shows the data exists.
  await page.getByTestId("read-position").click();
  await expect(page.getByTestId("position-read")).not.toHaveText("");
  await announce("late one");
  await announce("late two");
  await expect(page.getByTestId("before")).toHaveText(String(before + 2));

  await page.getByTestId("show-late-reader").click();
  await expect(page.getByTestId("late-heard")).toHaveText("late one, late two");
  // The handlers that had them did not get them again.
  await expect(page.getByTestId("before")).toHaveText(String(before + 2));
  await expect(page.getByTestId("after")).toHaveText(String(before + 2));

  await announce("late three");
  await expect(page.getByTestId("late-heard")).toHaveText("late one, late two, late three");
  await expect(page.getByTestId("before")).toHaveText(String(before + 3));
});
