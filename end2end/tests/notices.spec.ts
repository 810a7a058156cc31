// Announcements reach every tab; notifications reach one user's tabs.
import { test, expect, uniqueName, gotoHydrated, expectLive } from "./fixtures";

function notices(page: import("@playwright/test").Page) {
  return page.getByTestId("notice").locator("p");
}

test("an announcement reaches every open tab, logged in or not", async ({ people }) => {
  const ada = await people.signedUp("ada");
  const grace = await people.signedUp("grace");
  const visitor = await people.visitor();
  const text = uniqueName("announcement");

  await ada.page.getByLabel("Announcement").fill(text);
  await ada.page.getByRole("button", { name: "Announce" }).click();
  for (const page of [ada.page, grace.page, visitor]) {
    await expect(notices(page).filter({ hasText: text })).toHaveCount(1);
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

  await ada.page.getByLabel("To (user name)").fill(grace.name);
  await ada.page.getByLabel("Message").fill("Lunch?");
  await ada.page.getByRole("button", { name: "Send notification" }).click();
  await expect(ada.page.getByText("Sent.")).toBeVisible();
  const lunch = (page: import("@playwright/test").Page) => notices(page).filter({ hasText: "Lunch?" });
  for (const page of [grace.page, graceTab2]) {
    await expect(lunch(page)).toHaveText([`${ada.name}: Lunch?`]);
  }

  // An announcement after it reaches Alan and Ada after anything sent
  // before it: they got no notification. (Other tests may announce things
  // too, so only these two notices are looked at.)
  const marker = uniqueName("marker");
  await alan.page.getByLabel("Announcement").fill(marker);
  await alan.page.getByRole("button", { name: "Announce" }).click();
  for (const page of [alan.page, ada.page]) {
    await expect(notices(page).filter({ hasText: marker })).toHaveCount(1);
    await expect(lunch(page)).toHaveCount(0);
  }
});

test("a notification to a name that does not exist says so", async ({ people }) => {
  const ada = await people.signedUp("ada");
  const nobody = uniqueName("nobody");
  await ada.page.getByLabel("To (user name)").fill(nobody);
  await ada.page.getByLabel("Message").fill("hello?");
  await ada.page.getByRole("button", { name: "Send notification" }).click();
  await expect(ada.page.getByRole("alert")).toHaveText(`There is no user called “${nobody}”.`);
});
