// Drives the demo page in Debian's headless Chromium, as a person would.
//
//   node tests/browser/demo.mjs BASE_URL SCREENSHOT.png
//
// Run by tests/api/browser.rs against a live instance; exits non-zero with
// the failed check on stderr. Chromium is /usr/bin/chromium (or $CHROMIUM);
// scripts/setup installs it and this folder's node_modules.
import http from "node:http";
import { chromium } from "playwright-core";

const [base, screenshot] = process.argv.slice(2);
if (!base || !screenshot) {
  console.error("usage: demo.mjs BASE_URL SCREENSHOT.png");
  process.exit(2);
}
const PASSWORD = "correct horse battery staple";

function check(condition, what) {
  if (!condition) throw new Error("FAILED: " + what);
  console.log("ok - " + what);
}

/// Clicks `selector` and returns the answer the page shows for it.
async function act(page, selector) {
  const before = await page.locator("#log > div").count();
  await page.click(selector);
  await page.waitForFunction((n) => document.querySelectorAll("#log > div").length > n, before);
  return lastAnswer(page);
}

function lastAnswer(page) {
  return page.evaluate(() => {
    const entry = document.querySelector("#log > div");
    return { status: Number(entry.dataset.status), error: entry.dataset.error, shown: document.getElementById("last-error").textContent };
  });
}

async function logIn(page, username) {
  await page.fill("#username", username);
  await page.fill("#password", PASSWORD);
  await page.click("#login");
  await page.waitForFunction((name) => document.getElementById("me").textContent === name, username);
}

/// A page on another origin that tries to log the visitor out of `base`:
/// a form post (which cannot add headers) and two fetches (one simple, one
/// with the CSRF token it read from document.cookie, which needs a preflight).
function attackerPage(target) {
  return `<!doctype html><meta charset="utf-8"><title>elsewhere</title>
<iframe name="sink"></iframe>
<form id="f" method="POST" action="${target}/auth/logout-all" target="sink" enctype="text/plain">
<input name='{"a":"' value='b"}'></form>
<pre id="result"></pre>
<script>
const result = document.getElementById("result");
const note = (line) => { result.textContent += line + "\\n"; };
document.getElementById("f").submit();
(async () => {
  try { await fetch("${target}/auth/logout", { method: "POST", mode: "no-cors", credentials: "include" }); note("simple fetch sent"); }
  catch (e) { note("simple fetch failed"); }
  const csrf = (document.cookie.match(/jbl_csrf=([^;]*)/) || [])[1] || "none";
  try {
    const r = await fetch("${target}/auth/logout", { method: "POST", credentials: "include", headers: { "X-CSRF-Token": csrf } });
    note("preflighted fetch answered " + r.status);
  } catch (e) { note("preflighted fetch blocked"); }
  await new Promise((done) => setTimeout(done, 300));
  note("done");
})();
</script>`;
}

function serveAttacker(target) {
  const server = http.createServer((_, response) => {
    response.writeHead(200, { "Content-Type": "text/html" });
    response.end(attackerPage(target));
  });
  return new Promise((ready) => server.listen(0, "127.0.0.1", () => ready(server)));
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
let attacker;
try {
  const laptop = await browser.newContext({ userAgent: "DemoLaptop/1.0" });
  const page = await laptop.newPage();
  await page.goto(base + "/");
  check((await page.title()) === "jwt-blocklist demo", "the demo page loads");

  await page.fill("#username", "alice");
  await page.fill("#password", PASSWORD);
  check((await act(page, "#register")).status === 201, "register answers 201");
  await logIn(page, "alice");
  check(true, "log in (cookie transport) and who am I show alice");
  await page.screenshot({ path: screenshot, fullPage: true });

  const scripts = await page.evaluate(() => document.cookie);
  check(scripts.includes("jbl_csrf="), "the CSRF cookie is readable by the page");
  check(!scripts.includes("jbl_access") && !scripts.includes("jbl_refresh"), "HttpOnly cookies are invisible to scripts");
  const jar = await laptop.cookies(base);
  const access = jar.find((c) => c.name === "jbl_access");
  check(access && access.httpOnly && access.sameSite === "Strict" && access.secure, "jbl_access is HttpOnly, Strict, Secure");

  check((await act(page, "#whoami")).status === 200, "who am I answers 200");
  check((await act(page, "#refresh")).status === 200, "refresh (cookie + CSRF header) answers 200");
  check((await act(page, "#whoami")).status === 200, "still signed in after the refresh");

  // Another device of alice's: a second browser context.
  const phone = await browser.newContext({ userAgent: "DemoPhone/2.0" });
  const other = await phone.newPage();
  await other.goto(base + "/");
  await logIn(other, "alice");
  check((await act(page, "#sessions")).status === 200, "the session list loads");
  const rows = await page.locator("#session-rows tr").count();
  check(rows === 2, "two sessions listed (" + rows + ")");
  const agents = await page.locator("#session-rows").textContent();
  check(agents.includes("DemoLaptop/1.0") && agents.includes("DemoPhone/2.0"), "each with its user agent");

  // Pages from other origins try to log alice out; nothing happens.
  attacker = await serveAttacker(base);
  const port = attacker.address().port;
  for (const origin of [`http://127.0.0.1:${port}`, `http://localhost:${port}`]) {
    const evil = await laptop.newPage();
    await evil.goto(origin + "/");
    await evil.waitForFunction(() => document.getElementById("result").textContent.includes("done"), null, { timeout: 10000 });
    const notes = await evil.locator("#result").textContent();
    check(!notes.includes("answered 2"), "from " + origin + ": the preflighted fetch was not let through (" + notes.trim().replace(/\n/g, "; ") + ")");
    await evil.close();
    check((await act(page, "#whoami")).status === 200, "after the page from " + origin + ", alice is still signed in");
  }

  // Revoke the phone's session from the laptop's list.
  await act(page, "#sessions");
  const phoneRow = page.locator("#session-rows tr", { hasText: "DemoPhone/2.0" });
  const before = await page.locator("#log > div").count();
  await phoneRow.locator("button").click();
  await page.waitForFunction((n) => document.querySelectorAll("#log > div").length >= n + 2, before);
  check((await page.locator("#session-rows tr").count()) === 1, "the revoked session leaves the list");
  const stale = await act(other, "#whoami");
  check(stale.status === 401 && stale.shown === "token_revoked", "the phone now shows token_revoked");

  // Log out everywhere: a stale session in another tab shows token_revoked.
  await logIn(other, "alice");
  check((await act(page, "#logout-all")).status === 200, "log out everywhere answers 200");
  const revoked = await act(other, "#whoami");
  check(revoked.status === 401 && revoked.shown === "token_revoked", "the other tab's stale session shows token_revoked");
  const gone = await act(page, "#whoami");
  check(gone.status === 401 && gone.shown === "missing_token", "this tab's cookies were cleared (missing_token)");

  // Plain log out.
  await logIn(page, "alice");
  check((await act(page, "#logout")).status === 200, "log out answers 200");
  const after = await act(page, "#whoami");
  check(after.status === 401 && after.shown === "missing_token", "after log out, who am I shows missing_token");
} catch (error) {
  console.error(error.stack || String(error));
  process.exitCode = 1;
} finally {
  if (attacker) attacker.close();
  await browser.close();
}
