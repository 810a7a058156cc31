// Announcements reach every tab; notifications reach one user's tabs.
import { test, expect, uniqueName, gotoHydrated, expectLive, holdBackSockets } from "./fixtures";

function notices(page: import("@playwright/test").Page) {
  return page.getByTestId("notice").locator("p");
}

/**
 * Records every notice the page shows from now on, in the order they
 * appear; returns how many times it has shown one that contains a text.
 * The board keeps the latest five, and tests running beside this one may
 * announce meanwhile: a notice pushed off the board is still counted, and
 * one shown twice is counted twice.
 */
async function recordNotices(page: import("@playwright/test").Page) {
  await page.evaluate(() => {
    const shown: string[] = [];
    const counted = new WeakSet<Element>();
    const record = () => {
      for (const notice of document.querySelectorAll('[data-testid="notice"]')) {
        if (!counted.has(notice)) {
          counted.add(notice);
          shown.push(notice.querySelector("p")?.textContent ?? "");
        }
      }
    };
    record();
    (window as unknown as { shown: string[] }).shown = shown;
    new MutationObserver(record).observe(document.body, { childList: true, subtree: true });
  });
  return async (text: string) => {
    const shown = await page.evaluate(() => (window as unknown as { shown: string[] }).shown);
    return shown.filter((notice) => notice.includes(text)).length;
  };
}

test("an announcement reaches every open tab, logged in or not", async ({ people }) => {
  const ada = await people.signedUp("ada");
  const grace = await people.signedUp("grace");
  const visitor = await people.visitor();
  const text = uniqueName("announcement");
  const pages = [ada.page, grace.page, visitor];
  const records = await Promise.all(pages.map(recordNotices));

  await ada.page.getByLabel("Announcement").fill(text);
  await ada.page.getByRole("button", { name: "Announce" }).click();
  for (const timesShown of records) {
    // With its author: no one can pass a notice off as the site's own.
    await expect.poll(() => timesShown(`${ada.name}: ${text}`)).toBe(1);
  }
  await expect(ada.page.getByLabel("Announcement")).toHaveValue("");
});

test("visitors are asked to log in before they announce", async ({ people }) => {
  const visitor = await people.visitor();
  await expect(visitor.getByTestId("announce-log-in")).toHaveText("Log in to announce something to every open tab.");
  await expect(visitor.getByRole("button", { name: "Announce" })).toHaveCount(0);
});

test("an empty announcement gets a message, not a broadcast", async ({ people }) => {
  const ada = await people.signedUp("ada");
  await ada.page.getByRole("button", { name: "Announce" }).click();
  await expect(ada.page.getByRole("alert")).toHaveText("Write a message first.");
});

test("a notification reaches every tab of its user and nobody else", async ({ people }) => {
  const ada = await people.signedUp("ada");
  const grace = await people.signedUp("grace");
  const alan = await people.signedUp("alan");
  const graceTab2 = await people.newTab(grace);
  await gotoHydrated(graceTab2, "/");
  await expectLive(graceTab2);
  const [graces, graces2, alans, adas] = await Promise.all(
    [grace.page, graceTab2, alan.page, ada.page].map(recordNotices),
  );

  await ada.page.getByLabel("To (user name)").fill(grace.name);
  await ada.page.getByLabel("Message").fill("Lunch?");
  await ada.page.getByRole("button", { name: "Send notification" }).click();
  await expect(ada.page.getByText("Sent, if someone has that name.")).toBeVisible();
  for (const timesShown of [graces, graces2]) {
    await expect.poll(() => timesShown(`${ada.name}: Lunch?`)).toBe(1);
  }

  // An announcement after it reaches Alan and Ada after anything sent
  // before it: they got no notification.
  const marker = uniqueName("marker");
  await alan.page.getByLabel("Announcement").fill(marker);
  await alan.page.getByRole("button", { name: "Announce" }).click();
  for (const timesShown of [alans, adas]) {
    await expect.poll(() => timesShown(marker)).toBe(1);
    expect(await timesShown("Lunch?")).toBe(0);
  }
});

test("a notification to a name no one has gets the same answer as one to a user", async ({ people }) => {
  // The answer must not tell who has an account.
  const ada = await people.signedUp("ada");
  const nobody = uniqueName("nobody");
  await ada.page.getByLabel("To (user name)").fill(nobody);
  await ada.page.getByLabel("Message").fill("hello?");
  await ada.page.getByRole("button", { name: "Send notification" }).click();
  const form = ada.page.getByRole("region", { name: "Notify someone" });
  await expect(form.getByRole("status")).toHaveText("Sent, if someone has that name.");
  await expect(form.getByRole("alert")).toHaveCount(0);
});

test("a tab whose connection was cut gets what it missed meanwhile, each once", async ({ people }) => {
  const ada = await people.signedUp("ada");
  const grace = await people.signedUp("grace");
  // A tab of Grace's whose connection the test can cut and hold back.
  const tab = await people.newTab(grace);
  let open: import("@playwright/test").WebSocketRoute | undefined;
  let holdBack = false;
  await tab.routeWebSocket(/\/ws(\?|$)/, (socket) => {
    if (holdBack) {
      socket.close();
    } else {
      socket.connectToServer();
      open = socket;
    }
  });
  await gotoHydrated(tab, "/");
  await expectLive(tab);
  const timesShown = await recordNotices(tab);
  const announce = async (text: string) => {
    await ada.page.getByLabel("Announcement").fill(text);
    await ada.page.getByLabel("Announcement").press("Enter");
    await expect(ada.page.getByLabel("Announcement")).toHaveValue("");
  };
  const before = uniqueName("before");
  await announce(before);
  await expect.poll(() => timesShown(before)).toBe(1);

  holdBack = true;
  await open!.close();
  await expect(tab.getByTestId("connection-state")).toHaveAttribute("data-state", "reconnecting");
  const missed = [uniqueName("missed"), uniqueName("missed")];
  for (const text of missed) {
    await announce(text);
  }
  await ada.page.getByLabel("To (user name)").fill(grace.name);
  await ada.page.getByLabel("Message").fill("Still there?");
  await ada.page.getByLabel("Message").press("Enter");
  await expect(ada.page.getByText("Sent, if someone has that name.")).toBeVisible();
  holdBack = false;

  await expect(tab.getByTestId("connection-state")).toHaveAttribute("data-state", "live", { timeout: 20_000 });
  for (const text of missed) {
    await expect.poll(() => timesShown(text)).toBe(1);
  }
  await expect.poll(() => timesShown(`${ada.name}: Still there?`)).toBe(1);
  // Each once, and what it had already was not replayed to it: a second
  // copy would have come with the missed ones.
  for (const text of [...missed, before]) {
    expect(await timesShown(text)).toBe(1);
  }
});

test("a notification sent between a page's render and its socket's first connection arrives", async ({ people }) => {
  const ada = await people.signedUp("ada");
  const grace = await people.signedUp("grace");
  // A new tab of Grace's whose socket reaches the server only when the
  // test lets it: the page is rendered and hydrated first.
  const tab = await people.newTab(grace);
  const release = await holdBackSockets(tab);
  await gotoHydrated(tab, "/login");
  const timesShown = await recordNotices(tab);

  const text = uniqueName("meanwhile");
  await ada.page.getByLabel("To (user name)").fill(grace.name);
  await ada.page.getByLabel("Message").fill(text);
  await ada.page.getByLabel("Message").press("Enter");
  await expect(ada.page.getByText("Sent, if someone has that name.")).toBeVisible();
  release();

  await expectLive(tab);
  await expect.poll(() => timesShown(`${ada.name}: ${text}`)).toBe(1);
});

test("notices that arrive never move the page, and a click lands while they do", async ({ people }) => {
  const ada = await people.signedUp("ada");
  const grace = await people.signedUp("grace");
  // Every layout shift on Ada's page from now on (the browser's own
  // measure, as Core Web Vitals' CLS counts it), but those a click of hers
  // caused.
  await ada.page.evaluate(() => {
    const shifts: number[] = [];
    (window as unknown as { shifts: number[] }).shifts = shifts;
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries() as unknown as { value: number; hadRecentInput: boolean }[]) {
        if (!entry.hadRecentInput) shifts.push(entry.value);
      }
    }).observe({ type: "layout-shift" });
  });
  const announce = ada.page.getByRole("button", { name: "Send notification" });
  // Where the button is on the page (not in the viewport, which scrolls).
  const onPage = () =>
    announce.evaluate((button) => {
      const box = button.getBoundingClientRect();
      return { x: box.x + window.scrollX, y: box.y + window.scrollY };
    });
  const before = await onPage();

  const gracesNotices = await recordNotices(grace.page);
  // Grace announces, again and again, while Ada uses the page.
  let announcing = true;
  const announcements = (async () => {
    for (let n = 0; announcing && n < 12; n++) {
      await grace.page.getByLabel("Announcement").fill(`${uniqueName("shift")} ${n}`);
      await grace.page.getByRole("button", { name: "Announce" }).click();
      await expect(grace.page.getByLabel("Announcement")).toHaveValue("");
    }
  })();
  const shifts = () => ada.page.evaluate(() => (window as unknown as { shifts: number[] }).shifts);
  await expect(notices(ada.page).filter({ hasText: "shift" }).nth(2)).toBeAttached();
  expect(await shifts()).toEqual([]);
  expect(await onPage()).toEqual(before);
  await ada.page.getByLabel("To (user name)").fill(grace.name);
  await ada.page.getByLabel("Message").fill("Still here?");
  await announce.click();
  await expect(ada.page.getByText("Sent, if someone has that name.")).toBeVisible();
  // Ada's answer, under her form, may move what is below it; the notices
  // that arrive after it move nothing.
  const afterHerAnswer = (await shifts()).length;
  await expect.poll(() => gracesNotices(`${ada.name}: Still here?`)).toBe(1);
  announcing = false;
  await announcements;
  await expect(notices(ada.page).filter({ hasText: "shift" }).first()).toBeAttached();
  expect((await shifts()).slice(afterHerAnswer)).toEqual([]);
});
