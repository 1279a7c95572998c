// Opens the API reference at /docs in Debian's headless Chromium and checks
// that it renders every operation of /openapi.json from this origin alone.
//
//   node tests/browser/docs.mjs BASE_URL SCREENSHOT.png
//
// Run by tests/api/openapi.rs against a live instance; exits non-zero with
// the failed check on stderr.
import { chromium } from "playwright-core";

const [base, screenshot] = process.argv.slice(2);
if (!base || !screenshot) {
  console.error("usage: docs.mjs BASE_URL SCREENSHOT.png");
  process.exit(2);
}

function check(condition, what) {
  if (!condition) throw new Error("FAILED: " + what);
  console.log("ok - " + what);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
try {
  const page = await browser.newPage();
  const requests = [];
  const problems = [];
  page.on("request", (request) => requests.push(request.url()));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(message.text());
  });
  page.on("pageerror", (error) => problems.push(String(error)));

  const spec = await (await fetch(base + "/openapi.json")).json();
  const operations = Object.values(spec.paths).reduce((n, item) => n + Object.keys(item).length, 0);

  await page.goto(base + "/docs");
  await page.waitForFunction(
    (n) => document.querySelectorAll(".opblock").length >= n,
    operations,
    { timeout: 20000 },
  );
  check(true, `all ${operations} operations are rendered`);
  const title = await page.locator(".info .title").first().textContent();
  check(title.includes("jwt-blocklist"), "the document's title is shown: " + title);
  const schemes = await page.locator(".auth-wrapper .authorize").count();
  check(schemes === 1, "the Authorize button (security schemes) is there");
  const foreign = requests.filter((url) => !url.startsWith(base + "/") && !url.startsWith("data:"));
  check(foreign.length === 0, "nothing is fetched from elsewhere: " + JSON.stringify(foreign));
  check(problems.length === 0, "no script or policy error: " + JSON.stringify(problems));
  await page.screenshot({ path: screenshot, fullPage: false });
} finally {
  await browser.close();
}
