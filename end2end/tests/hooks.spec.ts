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
