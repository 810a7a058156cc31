// The README's screenshots, made from the real app: two people in a room.
// A server of its own, empty at each run, and fixed names keep the pictures
// the same from run to run: they change only when the pages do.
//
// Each page is compared with its picture in docs/screenshots (where
// `snapshotPathTemplate` in playwright.config.ts points); a page that
// looks different fails the test, with the new picture and the
// difference in end2end/test-results/. `scripts/screenshots` takes the
// pictures again, on purpose. When there are no pictures at all (a new
// product's first run), they are taken, to be committed; one missing among
// the others fails, as any change to the look does.
import { existsSync } from "node:fs";
import { dirname } from "node:path";
import type { Page } from "@playwright/test";
import { test, expect, signUp, createRoom, enterRoom, post, messages, presence, currentUser } from "./fixtures";
import { PrivateServer } from "./private-server";

const server = new PrivateServer(Number(process.env.E2E_SCREENSHOTS_PORT ?? 3102), "target/e2e/screenshots.db");

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

const viewport = { width: 1100, height: 700 };
// A few pixels may differ (font smoothing); a changed page differs by many.
const compare = { maxDiffPixelRatio: 0.002, animations: "disabled" } as const;

/** Whether this run takes the project's first pictures. */
let firstPictures: boolean | undefined;

/** Compares `page` with its picture `name`, or takes it in a project that has no pictures yet. */
async function looksLike(page: Page, name: string) {
  const picture = test.info().snapshotPath(name);
  // Decided once, before the first picture is taken (which makes the folder).
  firstPictures ??= !existsSync(dirname(picture));
  if (!firstPictures) {
    await expect(page).toHaveScreenshot(name, compare);
    return;
  }
  await page.screenshot({ path: picture, animations: "disabled", caret: "hide" });
  test.info().annotations.push({ type: "screenshot taken", description: `${picture}: there was none; commit it` });
  console.log(`took ${picture}: this project had no screenshots; commit them`);
}

test("screenshots of the main pages", async ({ browser, errors }) => {
  const adaContext = await browser.newContext({ viewport });
  const graceContext = await browser.newContext({ viewport });
  const ada = await adaContext.newPage();
  const grace = await graceContext.newPage();
  for (const page of [ada, grace]) {
    page.on("pageerror", (error) => errors.push(`uncaught: ${error.message}`));
  }

  await signUp(ada, "ada");
  await expect(currentUser(ada)).toBeVisible();
  await signUp(grace, "grace");
  await expect(currentUser(grace)).toBeVisible();

  const url = await createRoom(ada, "Design review");
  await enterRoom(grace, url);
  await post(ada, "Morning! The new header is up on the staging site.");
  await post(grace, "Looks great. Can we make the connection badge a little quieter?");
  await post(ada, "Sure, I will tone it down.");
  await expect(messages(grace)).toHaveCount(3);
  await expect(presence(ada)).toHaveText(["ada", "grace"]);
  await grace.getByPlaceholder("Write a message").pressSequentially("Thanks");
  await expect(ada.getByTestId("typing")).toHaveText("grace is typing…");
  await looksLike(ada, "room.png");

  await ada.goto("/");
  await expect(ada.getByRole("link", { name: "Design review" })).toBeVisible();
  await grace.goto("/");
  await grace.getByLabel("Announcement").fill("Release 1.2 goes out at noon.");
  await grace.getByRole("button", { name: "Announce" }).click();
  await expect(ada.getByTestId("notice")).toHaveCount(1);
  await looksLike(ada, "home.png");

  const visitor = await browser.newPage({ viewport });
  await visitor.goto("/login");
  await visitor.getByLabel("User name").fill("ada");
  await visitor.getByLabel("Password").fill("not her password");
  await visitor.getByRole("button", { name: "Log in" }).click();
  await expect(visitor.getByRole("alert")).toHaveText("Wrong user name or password.");
  await looksLike(visitor, "log-in.png");

  await adaContext.close();
  await graceContext.close();
  await visitor.close();
});
