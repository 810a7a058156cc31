// Another site's page is the attacker's tool: a form on it posts to this
// site's server functions from the visitor's own browser. A log-in from
// there (log-in CSRF) would leave the visitor using the attacker's account
// without knowing it; the server refuses such calls with 403.
import { test, expect, gotoHydrated, logInLink, currentUser, PASSWORD } from "./fixtures";

const ATTACKER = "http://attacker.test";

test("a form on another site cannot log the visitor in as someone else", async ({ people, baseURL }) => {
  const mallory = await people.signedUp("mallory");
  const victim = await people.visitor();

  // The attacker's page: a text/plain form laid out to read as a URL-encoded
  // one ("name=…&password=…&x=y").
  const field = `name=${mallory.name}&password=${PASSWORD}&x`;
  await victim.context().route(`${ATTACKER}/**`, (route) =>
    route.fulfill({
      contentType: "text/html",
      body: `<form method="post" action="${baseURL}/api/auth/log_in" enctype="text/plain">
               <input type="hidden" name="${field}" value="y">
               <button>See the prize</button>
             </form>`,
    }),
  );
  await victim.goto(`${ATTACKER}/`);
  const answer = victim.waitForResponse(`${baseURL}/api/auth/log_in`);
  await victim.getByRole("button", { name: "See the prize" }).click();
  expect((await answer).status()).toBe(403);

  // Back on the site, the visitor is still a visitor.
  await gotoHydrated(victim, "/");
  await expect(logInLink(victim)).toBeVisible();
  await expect(currentUser(victim)).toHaveCount(0);
});
