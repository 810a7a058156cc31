// Shared test helpers.
//
// - `page` fails the test if the browser logs an error or a script throws.
// - `gotoHydrated` waits until the app has hydrated before a test clicks:
//   the app sets `data-hydrated` on <html> from an effect, and effects run
//   only once the wasm bundle has taken over the page.
// - `uniqueName` makes user names that no other test (or earlier run) uses.
import { test as base, expect, type Page } from "@playwright/test";

export const PASSWORD = "correct horse battery";

export const test = base.extend<{ page: Page }>({
  page: async ({ page }, use) => {
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(`uncaught: ${error.message}`));
    page.on("console", (message) => {
      // A server function that answers 4xx (a wrong password, say) makes
      // Chromium log the failed request; that is the app working as meant.
      if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
        errors.push(message.text());
      }
    });
    await use(page);
    expect(errors, "errors in the browser console").toEqual([]);
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

export async function signUp(page: Page, name: string, password = PASSWORD) {
  await gotoHydrated(page, "/signup");
  await page.getByLabel("User name").fill(name);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign up" }).click();
}

export async function logIn(page: Page, name: string, password = PASSWORD) {
  await gotoHydrated(page, "/login");
  await page.getByLabel("User name").fill(name);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
}

export function currentUser(page: Page) {
  return page.getByTestId("current-user");
}
