// Accounts in the browser: sign up, log out, log in, the errors a person
// sees, and how long a login lasts.
import { test, expect, gotoHydrated, uniqueName, signUp, logIn, currentUser, logInLink, PASSWORD } from "./fixtures";

test("signing up logs the new user in", async ({ page }) => {
  const name = uniqueName("sign-up");
  await signUp(page, name);

  await expect(page).toHaveURL("/");
  await expect(currentUser(page)).toHaveText(`Logged in as ${name}`);
  await expect(page.getByTestId("greeting")).toHaveText(`Welcome back, ${name}!`);
});

test("logging out and back in", async ({ page }) => {
  const name = uniqueName("round-trip");
  await signUp(page, name);
  await expect(currentUser(page)).toBeVisible();

  await page.getByRole("button", { name: "Log out" }).click();
  await expect(currentUser(page)).toHaveCount(0);
  await expect(logInLink(page)).toBeVisible();

  await logIn(page, name);
  await expect(page).toHaveURL("/");
  await expect(currentUser(page)).toHaveText(`Logged in as ${name}`);
});

test("a wrong password shows its message and logs nobody in", async ({ page }) => {
  const name = uniqueName("wrong-password");
  await signUp(page, name);
  await page.getByRole("button", { name: "Log out" }).click();
  await expect(currentUser(page)).toHaveCount(0);

  await logIn(page, name, "not the password");
  await expect(page.getByRole("alert")).toHaveText("Wrong user name or password.");
  await expect(page).toHaveURL("/login");
  await expect(currentUser(page)).toHaveCount(0);
});

test("a taken name shows its message", async ({ page, browser }) => {
  const name = uniqueName("taken");
  await signUp(page, name);
  await expect(currentUser(page)).toBeVisible();

  const other = await browser.newPage();
  await signUp(other, name.toUpperCase());
  await expect(other.getByRole("alert")).toHaveText("That user name is already taken.");
  await expect(other.getByTestId("current-user")).toHaveCount(0);
  await other.close();
});

test("bad input shows a readable message", async ({ page }) => {
  await signUp(page, "", PASSWORD);
  await expect(page.getByRole("alert")).toHaveText("Please choose a user name.");

  await page.getByLabel("User name").fill(uniqueName("short"));
  await page.getByLabel("Password").fill("short");
  await page.getByRole("button", { name: "Sign up" }).click();
  await expect(page.getByRole("alert")).toHaveText("Passwords need at least 8 characters.");
});

test("the login survives a reload", async ({ page }) => {
  const name = uniqueName("reload");
  await signUp(page, name);
  await expect(currentUser(page)).toBeVisible();

  await page.reload();
  await expect(page.locator("html")).toHaveAttribute("data-hydrated", "");
  await expect(currentUser(page)).toHaveText(`Logged in as ${name}`);
});

test("another browser is not logged in", async ({ page, browser }) => {
  await signUp(page, uniqueName("isolated"));
  await expect(currentUser(page)).toBeVisible();

  const otherContext = await browser.newContext();
  const other = await otherContext.newPage();
  await gotoHydrated(other, "/");
  await expect(logInLink(other)).toBeVisible();
  await expect(other.getByTestId("current-user")).toHaveCount(0);
  await otherContext.close();
});

test("a stale session cookie is explained, then forgotten", async ({ page, context, baseURL }) => {
  await context.addCookies([{ name: "session", value: "AAAAAAAAAAAAAAAAAAAAAA", url: baseURL! }]);
  await gotoHydrated(page, "/");
  await expect(page.getByRole("status")).toHaveText(
    "Your session has expired or is no longer valid. Please log in again.",
  );

  await page.reload();
  await expect(page.locator("html")).toHaveAttribute("data-hydrated", "");
  await expect(logInLink(page)).toBeVisible();
  await expect(page.getByRole("status")).toHaveCount(0);
});

test.describe("without JavaScript", () => {
  test.use({ javaScriptEnabled: false });

  test("the forms still sign up, show errors and log in", async ({ page }) => {
    const name = uniqueName("no-js");
    await page.goto("/signup");
    await page.getByLabel("User name").fill(name);
    await page.getByLabel("Password").fill("short");
    await page.getByRole("button", { name: "Sign up" }).click();
    await expect(page.getByRole("alert")).toHaveText("Passwords need at least 8 characters.");

    await page.getByLabel("User name").fill(name);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Sign up" }).click();
    await expect(page).toHaveURL("/");
    await expect(currentUser(page)).toHaveText(`Logged in as ${name}`);

    await page.getByRole("button", { name: "Log out" }).click();
    await expect(logInLink(page)).toBeVisible();

    await page.goto("/login");
    await page.getByLabel("User name").fill(name);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Log in" }).click();
    await expect(currentUser(page)).toHaveText(`Logged in as ${name}`);
  });
});
