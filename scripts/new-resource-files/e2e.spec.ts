// __Humans__ in the browser, live on every tab of their owner.
//
// Written by `__command__`.
import { test, expect, expectLive, gotoHydrated, holdBackSockets, uniqueName } from "./fixtures";
import type { Page } from "@playwright/test";

/** Opens `path` and waits until the page is hydrated and live. */
async function openLive(page: Page, path: string) {
  await gotoHydrated(page, path);
  await expectLive(page);
}

/** Fills the form for a new __human__ (`text` its __first__) and sends it; returns once stored. */
async function add__Type__(page: Page, text: string) {
  const form = page.getByTestId("new-__name__");
  @@E2E_FILL_NEW@@
  await form.getByLabel("__First__", { exact: true }).fill(text);
  const stored = page.waitForResponse((response) => response.url().endsWith("/api/__plural__/create"));
  await form.getByRole("button", { name: "Add __human__" }).click();
  expect((await stored).ok()).toBe(true);
}

test("a __human__ made, edited and deleted in one tab changes at once in its owner's other tab, and nobody else's", async ({ people }) => {
  const ada = await people.signedUp("ada");
  const adaAgain = await people.newTab(ada);
  const grace = await people.signedUp("grace");
  await openLive(ada.page, "/__plural__");
  await openLive(adaAgain, "/__plural__");
  await openLive(grace.page, "/__plural__");

  const first = uniqueName("first");
  await add__Type__(ada.page, first);
  await expect(adaAgain.getByRole("link", { name: first })).toBeVisible();
  await expect(ada.page.getByRole("link", { name: first })).toBeVisible();
  await expect(ada.page.getByTestId("new-__name__").getByLabel("__First__", { exact: true })).toHaveValue("");

  // Both of Ada's tabs open its edit page; one edits it, the other sees it.
  await adaAgain.getByRole("link", { name: first }).click();
  await expect(adaAgain.getByLabel("__First__", { exact: true })).toHaveValue(first);
  await ada.page.getByRole("link", { name: first }).click();
  const second = uniqueName("second");
  const edit = ada.page.getByTestId("edit-__name__");
  @@E2E_FILL_EDIT@@
  await edit.getByLabel("__First__", { exact: true }).fill(second);
  await edit.getByRole("button", { name: "Save" }).click();
  await expect(ada.page).toHaveURL(/\/__plural__$/);
  await expect(ada.page.getByRole("link", { name: second })).toBeVisible();
  await expect(adaAgain.getByLabel("__First__", { exact: true })).toHaveValue(second);
  @@E2E_EXPECT_EDIT@@

  // The other tab deletes it: gone from the first tab's list.
  await adaAgain.getByRole("button", { name: "Delete __human__" }).click();
  await expect(adaAgain).toHaveURL(/\/__plural__$/);
  await expect(ada.page.getByRole("link", { name: second })).toHaveCount(0);
  await expect(ada.page.getByTestId("no-__plural__")).toBeVisible();

  // Grace's list never showed any of it.
  await expect(grace.page.getByTestId("no-__plural__")).toBeVisible();
  await add__Type__(grace.page, uniqueName("hers"));
  await expect(grace.page.getByTestId("__name__-list").getByRole("link")).toHaveCount(1);
});

// The page hears its owner's stream from where the server read the list
// (the header's notices do the same for that stream, from where they were
// read: whichever is earlier is where the tab starts).
test("the list comes rendered with the page, and a change made before its socket opens still shows", async ({ people }) => {
  const ada = await people.signedUp("ada");
  await openLive(ada.page, "/__plural__");
  const before = uniqueName("before");
  await add__Type__(ada.page, before);

  // Without JavaScript, the server's page already lists it.
  const html = await (await ada.page.request.get("/__plural__")).text();
  expect(html).toContain(before);

  // A tab whose socket is held back: rendered and hydrated, not yet live.
  const late = await ada.context.newPage();
  const release = await holdBackSockets(late);
  await gotoHydrated(late, "/__plural__");
  await expect(late.getByRole("link", { name: before })).toBeVisible();
  const during = uniqueName("during");
  await add__Type__(ada.page, during);
  release();
  await expectLive(late);
  await expect(late.getByRole("link", { name: during })).toBeVisible();
  await expect(late.getByTestId("__name__-list").getByRole("link")).toHaveCount(2);
});

test("a tab told it missed changes for good loads its list again", async ({ people }) => {
  const ada = await people.signedUp("ada");
  const tab = await people.newTab(ada);
  // Between the server and this tab, deletions are lost, and the tab is
  // told it missed something instead, as when it was away too long.
  let loseDeletions = false;
  await tab.routeWebSocket(/\/ws(\?|$)/, (socket) => {
    const server = socket.connectToServer();
    server.onMessage((message) => {
      if (loseDeletions && typeof message === "string" && message.includes('"name":"__name__.deleted"')) {
        const lost = JSON.parse(message);
        const position = { epoch: lost.epoch, offset: lost.offset };
        socket.send(JSON.stringify({ type: "discontinuity", stream: lost.stream, reason: "too_old", position }));
      } else {
        socket.send(message);
      }
    });
  });
  await openLive(ada.page, "/__plural__");
  await openLive(tab, "/__plural__");
  const doomed = uniqueName("doomed");
  await add__Type__(ada.page, doomed);
  await expect(tab.getByRole("link", { name: doomed })).toBeVisible();

  loseDeletions = true;
  await ada.page.getByRole("link", { name: doomed }).click();
  await ada.page.getByRole("button", { name: "Delete __human__" }).click();
  await expect(ada.page).toHaveURL(/\/__plural__$/);
  // The tab never heard of the deletion: its list shows it because it
  // loaded the list again.
  await expect(tab.getByRole("link", { name: doomed })).toHaveCount(0);
  await expect(tab.getByTestId("no-__plural__")).toBeVisible();
});

test("a visitor is asked to log in", async ({ people }) => {
  const visitor = await people.visitor();
  await gotoHydrated(visitor, "/__plural__");
  await expect(visitor.getByTestId("__plural__-log-in")).toBeVisible();
});
