// Shared test helpers.
//
// - Every page a test opens fails the test if the browser logs an error or
//   a script throws (`errors` collects them; checked when the test ends).
// - `gotoHydrated` waits until the app has hydrated before a test clicks:
//   the app sets `data-hydrated` on <html> from an effect, and effects run
//   only once the wasm bundle has taken over the page.
// - `people` makes more users, each in a browser context of their own
//   (own cookies), and extra tabs for them.
// - `uniqueName` makes names that no other test (or earlier run) uses.
import { test as base, expect, type Browser, type BrowserContext, type Page } from "@playwright/test";

export const PASSWORD = "correct horse battery";

/** A signed-up user in a browser context of their own. */
export type Person = { name: string; context: BrowserContext; page: Page };

type People = {
  /** A new user, signed up and on the home page. */
  signedUp(prefix: string): Promise<Person>;
  /** A visitor (not logged in) on the home page. */
  visitor(): Promise<Page>;
  /** Another tab for the same person (same cookies). */
  newTab(person: Person): Promise<Page>;
};

function watch(page: Page, errors: string[]) {
  page.on("pageerror", (error) => errors.push(`uncaught: ${error.message}`));
  page.on("console", (message) => {
    // A server function that answers 4xx (a wrong password, say) makes
    // Chromium log the failed request; that is the app working as meant.
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      errors.push(message.text());
    }
  });
}

export const test = base.extend<{ errors: string[]; people: People }>({
  errors: async ({}, use) => {
    const errors: string[] = [];
    await use(errors);
    expect(errors, "errors in the browser console").toEqual([]);
  },
  page: async ({ page, errors }, use) => {
    watch(page, errors);
    await use(page);
  },
  people: async ({ browser, errors }, use) => {
    const contexts: BrowserContext[] = [];
    const open = async (browser: Browser) => {
      const context = await browser.newContext();
      contexts.push(context);
      const page = await context.newPage();
      watch(page, errors);
      return { context, page };
    };
    await use({
      async signedUp(prefix) {
        const { context, page } = await open(browser);
        const name = uniqueName(prefix);
        await signUp(page, name);
        await expect(currentUser(page)).toHaveText(`Logged in as ${name}`);
        await expectLive(page);
        return { name, context, page };
      },
      async visitor() {
        const { page } = await open(browser);
        await gotoHydrated(page, "/");
        await expectLive(page);
        return page;
      },
      async newTab(person) {
        const page = await person.context.newPage();
        watch(page, errors);
        return page;
      },
    });
    for (const context of contexts) {
      await context.close();
    }
  },
});

export { expect };

export async function gotoHydrated(page: Page, path: string) {
  await page.goto(path);
  await expect(page.locator("html")).toHaveAttribute("data-hydrated", "");
}

let counter = 0;
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}-${Date.now().toString(36)}-${process.pid}-${counter}`;
}

// The forms are sent with Enter, as many people do: a click can miss its
// button when a notice arriving from another test's announcement pushes
// the page down at that very moment, and then nothing is sent at all.
export async function signUp(page: Page, name: string, password = PASSWORD) {
  await gotoHydrated(page, "/signup");
  await page.getByLabel("User name").fill(name);
  await page.getByLabel("Password").fill(password);
  await page.getByLabel("Password").press("Enter");
}

export async function logIn(page: Page, name: string, password = PASSWORD) {
  await gotoHydrated(page, "/login");
  await page.getByLabel("User name").fill(name);
  await page.getByLabel("Password").fill(password);
  await page.getByLabel("Password").press("Enter");
}

export function currentUser(page: Page) {
  return page.getByTestId("current-user");
}

/** The header's "Log in" link, shown to visitors. */
export function logInLink(page: Page) {
  return page.getByRole("navigation", { name: "Account" }).getByRole("link", { name: "Log in" });
}

/** Waits until the page's WebSocket is open (the header says "live"). */
export async function expectLive(page: Page) {
  await expect(page.getByTestId("connection-state")).toHaveAttribute("data-state", "live");
}

// @chat-begin
/** Creates a room from the home page; the creator ends up in it. */
export async function createRoom(page: Page, name: string) {
  await gotoHydrated(page, "/");
  await page.getByPlaceholder("New room name").fill(name);
  await page.getByRole("button", { name: "Create room" }).click();
  await expect(page.getByTestId("room-name")).toHaveText(name);
  await expectInRoom(page);
  return page.url();
}

/** Waits until the page's tab has joined the room it shows. */
export async function expectInRoom(page: Page) {
  await expect(page.getByTestId("membership")).toHaveAttribute("data-state", "joined");
}

/** Opens a room by its URL and waits until the tab is in it. */
export async function enterRoom(page: Page, url: string) {
  await gotoHydrated(page, url);
  await expectLive(page);
  await expectInRoom(page);
}

/** Writes a message in a room and sends it; returns once the server answered. */
export async function post(page: Page, text: string) {
  // Waits for the server's answer: a test that navigates away right after
  // would otherwise abort the call, and the message would never be stored.
  const answered = page.waitForResponse((response) => response.url().endsWith("/api/chat/post"));
  await page.getByPlaceholder("Write a message").fill(text);
  await page.getByRole("button", { name: "Send" }).click();
  await answered;
}

/** The texts of the messages a room page shows, in order. */
export function messages(page: Page) {
  return page.getByTestId("message").locator(".body");
}

/** The names in a room's "Here now" list. */
export function presence(page: Page) {
  return page.getByTestId("presence").getByRole("listitem");
}
// @chat-end

/**
 * Holds back every WebSocket the page opens until the returned function is
 * called: the page renders and hydrates, and its socket reaches the server
 * only then. Call it before the page loads.
 */
export async function holdBackSockets(page: Page): Promise<() => void> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  await page.routeWebSocket(/\/ws(\?|$)/, async (socket) => {
    await released;
    socket.connectToServer();
  });
  return release;
}
