// Chat rooms in two or three browsers side by side: rooms, messages,
// presence, typing, renames, and cleaning up when leaving a room.
import {
  test,
  expect,
  uniqueName,
  createRoom,
  enterRoom,
  expectInRoom,
  expectLive,
  gotoHydrated,
  messages,
  post,
  presence,
  holdBackSockets,
} from "./fixtures";
import type { WebSocketRoute } from "@playwright/test";

test("a new room appears live in everyone's room list", async ({ people }) => {
  const ada = await people.signedUp("ada");
  const grace = await people.signedUp("grace");
  const visitor = await people.visitor();
  const room = uniqueName("room");

  await createRoom(ada.page, room);
  await expect(grace.page.getByRole("link", { name: room })).toBeVisible();
  await expect(visitor.getByRole("link", { name: room })).toBeVisible();
});

test("a message appears live for the others, and once for its sender", async ({ people }) => {
  const ada = await people.signedUp("ada");
  const grace = await people.signedUp("grace");
  // The server leaves Ada's own tab out (its browser runtime names the tab
  // in the call): count the message events that tab receives.
  const messageFrames: string[] = [];
  ada.page.on("websocket", (socket) =>
    socket.on("framereceived", ({ payload }) => {
      if (typeof payload === "string" && payload.includes('"name":"chat.message"')) {
        messageFrames.push(payload);
      }
    }),
  );
  const url = await createRoom(ada.page, uniqueName("room"));
  await enterRoom(grace.page, url);
  await expect(ada.page.getByTestId("no-messages")).toBeVisible();

  await post(ada.page, "Hello from Ada");
  await expect(messages(grace.page)).toHaveText(["Hello from Ada"]);
  await expect(messages(ada.page)).toHaveText(["Hello from Ada"]);
  await expect(ada.page.getByPlaceholder("Write a message")).toHaveValue("");

  // Grace answers; when her message has reached Ada, anything Ada's own
  // message could have brought twice would have arrived before it.
  await post(grace.page, "Hi Ada");
  await expect(messages(ada.page)).toHaveText(["Hello from Ada", "Hi Ada"]);
  await expect(messages(grace.page)).toHaveText(["Hello from Ada", "Hi Ada"]);
  // Ada's tab received Grace's message only, never its own.
  expect(messageFrames).toHaveLength(1);
  expect(messageFrames[0]).toContain("Hi Ada");
});

test("the history is kept and shown to whoever comes later", async ({ people }) => {
  const ada = await people.signedUp("ada");
  const url = await createRoom(ada.page, uniqueName("room"));
  await post(ada.page, "first");
  await post(ada.page, "second");
  await expect(messages(ada.page)).toHaveText(["first", "second"]);

  const alan = await people.signedUp("alan");
  await enterRoom(alan.page, url);
  await expect(messages(alan.page)).toHaveText(["first", "second"]);
  await alan.page.reload();
  await expect(messages(alan.page)).toHaveText(["first", "second"]);
});

test("visitors are asked to log in before they can enter a room", async ({ people }) => {
  const ada = await people.signedUp("ada");
  const url = await createRoom(ada.page, uniqueName("room"));
  const visitor = await people.visitor();
  await gotoHydrated(visitor, url);
  await expect(visitor.getByRole("heading", { name: "Log in to join the conversation" })).toBeVisible();
});

test("presence counts people, not tabs", async ({ people }) => {
  const ada = await people.signedUp("ada");
  const grace = await people.signedUp("grace");
  const url = await createRoom(ada.page, uniqueName("room"));
  await expect(presence(ada.page)).toHaveText([ada.name]);

  await enterRoom(grace.page, url);
  const both = [ada.name, grace.name].sort();
  await expect(presence(ada.page)).toHaveText(both);
  await expect(presence(grace.page)).toHaveText(both);

  // A second tab of Grace's: still two people.
  const graceTab2 = await people.newTab(grace);
  await enterRoom(graceTab2, url);
  await expect(presence(graceTab2)).toHaveText(both);
  await expect(presence(ada.page)).toHaveText(both);

  // One of her tabs goes: she is still here. The last one goes: she left.
  await grace.page.close();
  await post(ada.page, "still here?");
  await expect(messages(graceTab2)).toContainText(["still here?"]);
  await expect(presence(ada.page)).toHaveText(both);
  await graceTab2.close();
  await expect(presence(ada.page)).toHaveText([ada.name]);
});

test("others see who is typing; the typist does not", async ({ people }) => {
  const ada = await people.signedUp("ada");
  const grace = await people.signedUp("grace");
  const url = await createRoom(ada.page, uniqueName("room"));
  await enterRoom(grace.page, url);

  await grace.page.getByPlaceholder("Write a message").pressSequentially("hel");
  await expect(ada.page.getByTestId("typing")).toHaveText(`${grace.name} is typing…`);
  await expect(grace.page.getByTestId("typing")).toHaveText("");

  // Posting ends it at once.
  await grace.page.getByRole("button", { name: "Send" }).click();
  await expect(messages(ada.page)).toHaveText(["hel"]);
  await expect(ada.page.getByTestId("typing")).toHaveText("");
});

test("renaming a room reaches its members as a public view, and only when the name changes", async ({
  people,
}) => {
  const ada = await people.signedUp("ada");
  const grace = await people.signedUp("grace");
  const original = uniqueName("room");

  // Count the rename events Grace's tab receives.
  const renameFrames: string[] = [];
  grace.page.on("websocket", (socket) =>
    socket.on("framereceived", ({ payload }) => {
      if (typeof payload === "string" && payload.includes('"name":"chat.room"')) {
        renameFrames.push(payload);
      }
    }),
  );
  const url = await createRoom(ada.page, original);
  await enterRoom(grace.page, url);

  const renamed = uniqueName("renamed");
  await ada.page.getByLabel("New name").fill(renamed);
  await ada.page.getByRole("button", { name: "Rename room" }).click();
  await expect(grace.page.getByTestId("room-name")).toHaveText(renamed);
  await expect(ada.page.getByTestId("room-name")).toHaveText(renamed);
  expect(renameFrames).toHaveLength(1);
  // The public view: id and name, nothing about who renamed it.
  expect(JSON.parse(renameFrames[0]).data).toEqual({ id: expect.any(Number), name: renamed });

  // The same name again: nothing is sent. A message sent after it arrives
  // after anything the rename would have sent.
  await ada.page.getByLabel("New name").fill(renamed);
  await ada.page.getByRole("button", { name: "Rename room" }).click();
  await expect(ada.page.getByRole("button", { name: "Rename room" })).toBeEnabled();
  await post(ada.page, "after the second rename");
  await expect(messages(grace.page)).toHaveText(["after the second rename"]);
  expect(renameFrames).toHaveLength(1);

  // Only the creator sees the form.
  await expect(grace.page.getByRole("button", { name: "Rename room" })).toHaveCount(0);
});

test("leaving a room leaves nothing behind, and coming back shows no duplicates", async ({ people }) => {
  const ada = await people.signedUp("ada");
  const grace = await people.signedUp("grace");
  const roomA = uniqueName("room-a");
  const roomB = uniqueName("room-b");
  const urlA = await createRoom(grace.page, roomA);
  const urlB = await createRoom(grace.page, roomB);

  // Ada's tab on the home page holds a baseline of subscriptions.
  await gotoHydrated(ada.page, "/");
  await expectLive(ada.page);
  const badge = ada.page.getByTestId("connection-state");
  const baseline = await badge.getAttribute("data-subscriptions");
  await expect(badge).toHaveAttribute("data-memberships", "0");

  // Into room A by clicking (client-side navigation), then out again. The
  // room page subscribes to more events than the home page, so a count
  // that did not move would prove nothing.
  await ada.page.getByRole("link", { name: roomA }).click();
  await expectInRoom(ada.page);
  await expect(badge).toHaveAttribute("data-memberships", "1");
  await expect
    .poll(async () => Number(await badge.getAttribute("data-subscriptions")))
    .toBeGreaterThan(Number(baseline));
  await ada.page.getByRole("link", { name: "← All rooms" }).click();
  await expect(ada.page.getByTestId("greeting")).toBeVisible();
  await expect(badge).toHaveAttribute("data-subscriptions", baseline!);
  await expect(badge).toHaveAttribute("data-memberships", "0");

  // In room B, a message to room A shows nowhere.
  await ada.page.getByRole("link", { name: roomB }).click();
  await expectInRoom(ada.page);
  await gotoHydrated(grace.page, urlA);
  await expectInRoom(grace.page);
  await post(grace.page, "for room A only");
  await enterRoom(grace.page, urlB);
  await post(grace.page, "for room B");
  await expect(messages(ada.page)).toHaveText(["for room B"]);

  // Back to room A: its message once, from the history.
  await ada.page.getByRole("link", { name: "← All rooms" }).click();
  await ada.page.getByRole("link", { name: roomA }).click();
  await expectInRoom(ada.page);
  await expect(messages(ada.page)).toHaveText(["for room A only"]);
  await expect(badge).toHaveAttribute("data-memberships", "1");
  expect(urlA).not.toEqual(urlB);
});

test("messages posted between the room page's render and its socket's join show once, in order", async ({ people }) => {
  const ada = await people.signedUp("ada");
  const grace = await people.signedUp("grace");
  const url = await createRoom(ada.page, uniqueName("room"));
  await post(ada.page, "before the page");

  // Grace opens the room in a tab whose socket reaches the server only
  // when the test lets it.
  const tab = await people.newTab(grace);
  const release = await holdBackSockets(tab);
  await gotoHydrated(tab, url);
  await expect(messages(tab)).toHaveText(["before the page"]);

  const texts = ["before the page"];
  for (let n = 1; n <= 20; n++) {
    const text = `message ${n}`;
    await post(ada.page, text);
    texts.push(text);
    if (n === 10) {
      release();
    }
  }
  await expectInRoom(tab);
  await expect(messages(tab)).toHaveText(texts);
});

test("a call names the tab's connection, or says it has none while its socket is down", async ({ people }) => {
  const ada = await people.signedUp("ada");
  // Ada's sockets from now on go through a route the test can close.
  let mayConnect = true;
  const sockets: WebSocketRoute[] = [];
  await ada.page.routeWebSocket(/\/ws(\?|$)/, (socket) => {
    if (mayConnect) {
      socket.connectToServer();
      sockets.push(socket);
    } else {
      socket.close();
    }
  });
  await createRoom(ada.page, uniqueName("room"));
  const markOfPost = async (text: string) => {
    const call = ada.page.waitForRequest((request) => request.url().endsWith("/api/chat/post"));
    await post(ada.page, text);
    return (await call).headers()["x-realtime-connection"];
  };
  expect(await markOfPost("while connected")).toMatch(/^[0-9a-f]{16}$/);

  // Without a connection the call still says it came from the realtime
  // client: the server can tell it from a call that forgot the client.
  mayConnect = false;
  for (const socket of sockets) {
    await socket.close();
  }
  await expect(ada.page.getByTestId("connection-state")).toHaveAttribute("data-state", "reconnecting");
  expect(await markOfPost("while away")).toBe("none");
});
