/**
 * Browser end-to-end test of the editor side: a real Node-RED, driven through headless Chromium
 * (playwright-core with the system Chromium, installed by scripts/ensure-chromium.js if missing).
 *
 *  1. the four node types are in the editor (in/out in the palette, the config nodes registered);
 *  2. a py-websocket in node dragged from the palette opens its dialog, whose Type select swaps
 *     the Path and URL rows;
 *  3. the "01 - Echo test" example is imported through the menu and deployed with the Deploy button;
 *  4. a page served by that Node-RED (httpStatic) opens a WebSocket from the browser to /echo and
 *     gets its message echoed back;
 *  5. the out node and both config nodes of the imported example open from the workspace and the
 *     pencil button, with the heartbeat and authentication rows following their checkboxes;
 *  6. the sections core does not have, closed by default, opened: the in node's Options (connection
 *     events give it a second output), the listener's Connections and Security (the rows of each
 *     authentication kind), and a JWT secret typed in stays out of the flow JSON;
 *  7. the client's Connection section, closed by default: autoConnect ticked for a client without
 *     it, the backoff rows following the reconnect policy, values checked and saved; the in node's
 *     connection events offered in connect mode too;
 *  8. the listener's backplane ("Share this path"): URL, namespace and password shown only while
 *     the box is ticked, URL and namespace checked as typed and saved into the flow, the password
 *     into the credentials file only (not the flow file, not the admin API), kept when opened again.
 *
 * Screenshots (palette, import-examples, dialog-in, dialog-out, dialog-listener, dialog-client,
 * dialog-listener-sections, dialog-client-sections) go
 * to $SCREENSHOTS_DIR, which `npm run screenshots` sets to docs/images/ for the README.
 */
"use strict";

const childProcess = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");
const should = require("should");
const { NodeRedProcess, ROOT } = require("../lib/node-red-process");
const { ms } = require("../lib/harness");

const CHROMIUM = "/usr/bin/chromium";
// `npm run screenshots` refreshes the README's pictures; a plain test run keeps its own in a temp dir
// so the checkout stays clean.
const IMAGES = process.env.SCREENSHOTS_DIR ? path.resolve(process.env.SCREENSHOTS_DIR)
    : path.join(os.tmpdir(), "pyws-editor-screenshots");
const UI_TIMEOUT = ms(15000);
const LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"];

describe("editor in a browser (Chromium)", function() {
    this.timeout(ms(180000));
    this.slow(ms(30000));

    let red;
    let staticDir;
    let browser;
    let context;
    let page;
    const pageErrors = [];

    before(async function() {
        const ensured = childProcess.spawnSync(process.execPath, [path.join(ROOT, "scripts", "ensure-chromium.js")],
            { stdio: "inherit", timeout: ms(900000) });
        if (ensured.status !== 0) throw new Error("scripts/ensure-chromium.js could not provide " + CHROMIUM);

        staticDir = fs.mkdtempSync(path.join(os.tmpdir(), "pyws-static-"));
        fs.copyFileSync(path.join(__dirname, "echo.html"), path.join(staticDir, "echo.html"));
        red = await new NodeRedProcess({
            env: { NODE_RED_PYTHON_VENV: process.env.NODE_RED_PYTHON_VENV || path.join(ROOT, ".venv") },
            // No welcome tour and no update-notifications prompt: their shade would cover the editor.
            settings: `httpStatic: ${JSON.stringify(staticDir)}, editorTheme: { tours: false }, ` +
                "telemetry: { enabled: false, updateNotification: false }",
        }).start();

        const { chromium } = require("playwright-core");
        browser = await chromium.launch({ executablePath: CHROMIUM, args: LAUNCH_ARGS, timeout: ms(60000) });
        context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
        context.setDefaultTimeout(UI_TIMEOUT);
        page = await context.newPage();
        page.on("pageerror", (error) => pageErrors.push(error.message));
        await page.goto(`http://127.0.0.1:${red.port}/`, { waitUntil: "domcontentloaded" });
        // The editor is ready once the palette has loaded the node definitions and the workspace exists.
        await page.waitForSelector("#red-ui-workspace-chart svg", { timeout: ms(60000) });
        await page.waitForSelector('.red-ui-palette-node[data-palette-type="py-websocket in"]', { timeout: ms(60000) });
        await page.waitForFunction(() => !document.querySelector("#red-ui-loading-progress") ||
            getComputedStyle(document.querySelector("#red-ui-loading-progress")).display === "none" ||
            document.querySelector("#red-ui-loading-progress").offsetParent === null, null, { timeout: ms(60000) });
        fs.mkdirSync(IMAGES, { recursive: true });
    });

    after(async function() {
        if (browser) await browser.close().catch(() => {});
        if (red) {
            await red.stop();
            red.cleanup();
        }
        if (staticDir) fs.rmSync(staticDir, { recursive: true, force: true });
    });

    afterEach(async function() {
        if (this.currentTest.state === "failed" && page && process.env.BROWSER_TEST_SHOTS) {
            const file = path.join(os.tmpdir(), `editor-failure-${Date.now()}.png`);
            await page.screenshot({ path: file }).catch(() => {});
            console.log(`screenshot of the failure: ${file}`);
        }
        if (this.currentTest.state === "failed" && red) {
            console.log(`--- node-red output ---\n${red.output.slice(-4000)}`);
            if (pageErrors.length) console.log(`--- page errors ---\n${pageErrors.join("\n")}`);
        }
    });

    function paletteNode(type) {
        return page.locator(`.red-ui-palette-node[data-palette-type="${type}"]`);
    }

    it("shows the four node types: in/out in the palette, the config nodes registered", async function() {
        for (const [type, label] of [["py-websocket in", "py\u2011websocket in"],
            ["py-websocket out", "py\u2011websocket out"]]) {
            const node = paletteNode(type);
            await node.waitFor({ state: "visible" });
            // The palette breaks long labels, even inside a word where the font makes it too
            // wide: compare the characters, not the breaks.
            should((await node.innerText()).replace(/\s+/g, "")).equal(label.replace(/\s+/g, ""));
            should(await node.evaluate((el) => $(el).data("category") ||
                $(el).closest(".red-ui-palette-category").attr("id"))).match(/network/);
        }
        const config = await page.evaluate(() => ["py-websocket-listener", "py-websocket-client"]
            .map((type) => { const def = RED.nodes.getType(type); return def && def.category; }));
        should(config).eql(["config", "config"]);

        // The network category, where the two nodes sit, is the palette picture for the README.
        const category = page.locator("#red-ui-palette-base-category-network");
        await category.scrollIntoViewIfNeeded();
        await category.screenshot({ path: path.join(IMAGES, "palette.png") });
    });

    it("a py-websocket in dragged from the palette opens a dialog whose Type swaps the Path and URL rows",
        async function() {
            const source = paletteNode("py-websocket in");
            await source.scrollIntoViewIfNeeded();
            const from = await source.boundingBox();
            const chart = await page.locator("#red-ui-workspace-chart").boundingBox();
            const to = { x: chart.x + 300, y: chart.y + 200 };
            const before = await page.evaluate(() => RED.nodes.filterNodes({ type: "py-websocket in" }).length);

            // jQuery UI's draggable needs real mouse movement between press and release.
            await page.mouse.move(from.x + from.width / 2, from.y + from.height / 2);
            await page.mouse.down();
            await page.mouse.move(from.x + from.width / 2 + 20, from.y + from.height / 2, { steps: 5 });
            await page.mouse.move(to.x, to.y, { steps: 20 });
            await page.mouse.up();

            await page.waitForFunction((count) => RED.nodes.filterNodes({ type: "py-websocket in" }).length === count + 1,
                before, { timeout: UI_TIMEOUT });
            const id = await page.evaluate(() => RED.nodes.filterNodes({ type: "py-websocket in" }).pop().id);
            const added = page.locator(`#red-ui-workspace-chart g.red-ui-flow-node-group[id="${id}"] rect.red-ui-flow-node`);
            await added.waitFor({ state: "visible" });
            await added.dblclick();

            const tray = page.locator(".red-ui-tray");
            await tray.locator("#node-input-mode").waitFor({ state: "visible" });
            const serverRow = tray.locator("#websocket-server-row");
            const clientRow = tray.locator("#websocket-client-row");
            should(await tray.locator("#node-input-mode").inputValue()).equal("server");
            await serverRow.waitFor({ state: "visible" });
            await clientRow.waitFor({ state: "hidden" });

            await tray.locator("#node-input-mode").selectOption({ label: "Connect to" });
            await clientRow.waitFor({ state: "visible" });
            await serverRow.waitFor({ state: "hidden" });

            await tray.locator("#node-input-mode").selectOption({ label: "Listen on" });
            await serverRow.waitFor({ state: "visible" });
            await clientRow.waitFor({ state: "hidden" });

            // Let the tray's slide-in animation finish before taking its picture.
            await page.waitForFunction(() => {
                const el = document.querySelector(".red-ui-tray");
                return el && !$(el).is(":animated");
            }, null, { timeout: UI_TIMEOUT });
            await tray.screenshot({ path: path.join(IMAGES, "dialog-in.png") });

            await page.locator("#node-dialog-cancel").click();
            await tray.waitFor({ state: "detached" });

            // The dragged node has no listener: remove it so the deploy below is clean.
            await added.click();
            await page.keyboard.press("Delete");
            await page.waitForFunction((nodeId) => !RED.nodes.node(nodeId), id, { timeout: UI_TIMEOUT });
        });

    it("imports the Echo test example through the menu and deploys it with the Deploy button", async function() {
        await page.locator("#red-ui-header-button-sidemenu").click();
        await page.locator("#menu-item-import").click();
        const dialog = page.locator("#red-ui-clipboard-dialog");
        await dialog.waitFor({ state: "visible" });
        await dialog.locator(".red-ui-tab", { hasText: "Examples" }).click();
        const examples = dialog.locator("#red-ui-clipboard-dialog-import-tab-examples");
        await examples.waitFor({ state: "visible" });
        // Examples > flows > node-red-contrib-python-websocket > flows > 01 - Echo test; core's own
        // examples sit beside it, so each step is looked up inside the folder above it.
        const label = (text) => `div[contains(@class,"red-ui-treeList-label")][.//span[normalize-space(.)=${JSON.stringify(text)}]]`;
        const moduleLabel = examples.locator(`xpath=.//${label("node-red-contrib-python-websocket")}`);
        const flowsLabel = examples.locator(`xpath=.//li[./div/${label("node-red-contrib-python-websocket")}]//${label("flows")}`);
        const echoLabel = examples.locator(`xpath=.//li[./div/${label("node-red-contrib-python-websocket")}]//${label("01 - Echo test")}`);
        await moduleLabel.waitFor({ state: "visible" });
        if (!(await flowsLabel.isVisible())) await moduleLabel.click();
        await flowsLabel.waitFor({ state: "visible" });
        if (!(await echoLabel.isVisible())) await flowsLabel.click();
        await echoLabel.click();
        const ok = page.locator("#red-ui-clipboard-dialog-ok");
        await page.waitForFunction(() => !$("#red-ui-clipboard-dialog-ok").button("option", "disabled"), null,
            { timeout: UI_TIMEOUT });
        await dialog.screenshot({ path: path.join(IMAGES, "import-examples.png") });
        await ok.click();
        await dialog.waitFor({ state: "hidden" });

        // Imported nodes follow the mouse until a click on the workspace places them.
        const chart = await page.locator("#red-ui-workspace-chart").boundingBox();
        await page.mouse.move(chart.x + 200, chart.y + 150, { steps: 5 });
        await page.mouse.move(chart.x + 220, chart.y + 160, { steps: 5 });
        await page.mouse.click(chart.x + 220, chart.y + 160);
        await page.waitForFunction(() => RED.view.state() === RED.state.DEFAULT, null, { timeout: UI_TIMEOUT });
        const imported = await page.evaluate(() => ({
            inNodes: RED.nodes.filterNodes({ type: "py-websocket in" }).length,
            paths: (() => {
                const paths = [];
                RED.nodes.eachConfig((node) => { if (node.type === "py-websocket-listener") paths.push(node.path); });
                return paths.sort();
            })(),
        }));
        should(imported.inNodes).equal(4); // two servers and two clients; the dragged node is gone
        should(imported.paths).eql(["/echo", "/echo-json"]);

        // What the editor flags as not properly configured (it asks for confirmation on deploy).
        const invalid = await page.evaluate(() => {
            const found = [];
            const check = (node) => {
                if (node.valid === false) {
                    found.push({ type: node.type, label: node.path || node.name || node.id,
                        errors: node.validationErrors || [] });
                }
            };
            RED.nodes.eachNode(check);
            RED.nodes.eachConfig(check);
            return found;
        });
        should(invalid).eql([]); // the example imports with no node flagged as misconfigured

        await page.locator("#red-ui-header-button-deploy").click();
        await page.locator("#red-ui-header-button-deploy.disabled").waitFor({ state: "attached", timeout: ms(30000) });
        await page.locator(".red-ui-notification", { hasText: /deployed/i }).first()
            .waitFor({ state: "visible", timeout: ms(30000) });
        should(await page.evaluate(() => RED.nodes.dirty())).equal(false);

        const deployed = await red.api("GET", "/flows");
        const types = deployed.body.map((node) => node.type);
        should(types).containEql("py-websocket in");
        should(types).containEql("py-websocket-listener");
    });

    it("a page served by Node-RED opens a WebSocket from the browser to /echo and gets the echo", async function() {
        const echoPage = await context.newPage();
        try {
            await echoPage.goto(`http://127.0.0.1:${red.port}/echo.html`, { waitUntil: "domcontentloaded" });
            await echoPage.locator("#echo", { hasText: "hello from the browser" })
                .waitFor({ state: "visible", timeout: ms(30000) });
            should(await echoPage.locator("#echo").innerText()).equal("hello from the browser");
            should(await echoPage.locator("#status").innerText()).equal("echoed");
        } finally {
            await echoPage.close();
        }
    });
    async function openNodeDialog(id) {
        const rect = page.locator(`#red-ui-workspace-chart g.red-ui-flow-node-group[id="${id}"] rect.red-ui-flow-node`);
        await rect.scrollIntoViewIfNeeded();
        await rect.dblclick();
        const tray = page.locator(".red-ui-tray").last();
        await tray.locator("#node-input-mode").waitFor({ state: "visible" });
        return tray;
    }

    // The topmost tray, done sliding in and scrolled to its top, for a screenshot.
    async function settledTray() {
        await page.waitForFunction(() => ![...document.querySelectorAll(".red-ui-tray")].some((el) => $(el).is(":animated")),
            null, { timeout: UI_TIMEOUT });
        await page.evaluate(() => {
            const tray = $(".red-ui-tray").last();
            tray.add(tray.find("*")).each(function() { if (this.scrollTop) this.scrollTop = 0; });
        });
        return page.locator(".red-ui-tray").last();
    }

    // The config node's dialog, then the node's, each closed with its "ok" or "cancel" button.
    async function closeConfigAndNodeDialogs(configButton = "cancel", nodeButton = configButton) {
        for (const [button, traysLeft] of [[`#node-config-dialog-${configButton}`, 1], [`#node-dialog-${nodeButton}`, 0]]) {
            await page.locator(button).click();
            await page.waitForFunction((count) => document.querySelectorAll(".red-ui-tray").length === count,
                traysLeft, { timeout: UI_TIMEOUT });
        }
    }

    // The pencil beside a config-node select: Node-RED 4.1+ names it node-input-btn-<property>-edit,
    // older editors node-input-lookup-<property>.
    function configEditButton(tray, property) {
        return tray.locator(`#node-input-btn-${property}-edit, #node-input-lookup-${property}`);
    }

    // The config node's dialog, from the pencil beside `property`, with its section `section`
    // (closed by default) opened.
    async function openConfigSection(tray, property, section) {
        await configEditButton(tray, property).click();
        const config = page.locator(".red-ui-tray").last();
        await config.locator("#node-config-input-path").waitFor({ state: "visible" });
        const body = config.locator(`#${section}`);
        await body.waitFor({ state: "hidden" });
        await config.locator(`.py-ws-section-toggle[data-section="${section}"]`).click();
        await body.waitFor({ state: "visible" });
        return config;
    }

    // Typed in and left: the editor validates on change, which a fill alone does not send.
    async function enter(input, value) {
        await input.fill(value);
        await input.blur();
    }

    // Once the editor flags input `id` as invalid (or, with `on` false, no longer does).
    function flagged(id, on) {
        return page.waitForFunction(([input, want]) => $("#" + input).hasClass("input-error") === want, [id, on],
            { timeout: UI_TIMEOUT });
    }

    // Input `id` of `tray` flagged once `bad` is typed in, and no longer once `good` is (kept).
    async function checkedAsTyped(tray, id, bad, good) {
        const input = tray.locator(`#${id}`);
        await enter(input, bad);
        await flagged(id, true);
        await enter(input, good);
        await flagged(id, false);
    }

    it("opens py-websocket out and both config dialogs from the imported example, as a user edits them",
        async function() {
            // The import and deploy notifications fade by themselves; wait so they are not in the pictures.
            await page.waitForFunction(() => !$(".red-ui-notification:visible").length, null, { timeout: ms(30000) });
            const outId = await page.evaluate(() => RED.nodes.filterNodes({ type: "py-websocket out" })
                .find((node) => node.client).id);
            let tray = await openNodeDialog(outId);
            should(await tray.locator("#node-input-mode").inputValue()).equal("client");
            await tray.locator("#websocket-client-row").waitFor({ state: "visible" });
            await tray.locator("#node-input-mode").selectOption({ label: "Listen on" });
            await tray.locator("#websocket-server-row").waitFor({ state: "visible" });
            await tray.locator("#websocket-client-row").waitFor({ state: "hidden" });
            await tray.locator("#node-input-mode").selectOption({ label: "Connect to" });
            await tray.locator("#websocket-client-row").waitFor({ state: "visible" });
            await (await settledTray()).screenshot({ path: path.join(IMAGES, "dialog-out.png") });

            // The client config node of the example, opened with the pencil, as a user would.
            await configEditButton(tray, "client").click();
            const client = page.locator(".red-ui-tray").last();
            const url = client.locator("#node-config-input-path");
            await url.waitFor({ state: "visible" });
            should(await url.inputValue()).equal("ws://localhost:1880/echo");
            await client.locator("#node-config-input-hb-row").waitFor({ state: "hidden" });
            await client.locator("#node-config-input-hb-cb").check();
            await client.locator("#node-config-input-hb-row").waitFor({ state: "visible" });
            await client.locator("#node-config-input-useAuth").check();
            await client.locator("#node-config-input-authType-select").selectOption("bearer");
            await client.locator("#node-config-input-token").waitFor({ state: "visible" });
            await client.locator("#node-config-input-user").waitFor({ state: "hidden" });
            await client.locator("#node-config-input-authType-select").selectOption("basic");
            await client.locator("#node-config-input-user").waitFor({ state: "visible" });
            await client.locator("#node-config-input-useAuth").uncheck();
            await client.locator("#node-config-input-hb-cb").uncheck();
            // An empty URL is flagged, as in core (which checks the scheme only at runtime).
            await url.fill("");
            await url.blur();
            await page.waitForFunction(() => $("#node-config-input-path").hasClass("input-error"), null,
                { timeout: UI_TIMEOUT });
            await url.fill("ws://localhost:1880/echo");
            await url.blur();
            await page.waitForFunction(() => !$("#node-config-input-path").hasClass("input-error"), null,
                { timeout: UI_TIMEOUT });
            await (await settledTray()).screenshot({ path: path.join(IMAGES, "dialog-client.png") });
            await closeConfigAndNodeDialogs();

            // The listener config node behind the /echo-json server, in entire-message mode.
            const inId = await page.evaluate(() => RED.nodes.filterNodes({ type: "py-websocket in" })
                .find((node) => node.server && RED.nodes.node(node.server).path === "/echo-json").id);
            tray = await openNodeDialog(inId);
            should(await tray.locator("#node-input-mode").inputValue()).equal("server");
            await configEditButton(tray, "server").click();
            const listener = page.locator(".red-ui-tray").last();
            const listenPath = listener.locator("#node-config-input-path");
            await listenPath.waitFor({ state: "visible" });
            should(await listenPath.inputValue()).equal("/echo-json");
            should(await listener.locator("#node-config-input-wholemsg").inputValue()).equal("true");
            await (await settledTray()).screenshot({ path: path.join(IMAGES, "dialog-listener.png") });
            await closeConfigAndNodeDialogs();

            // Looking is not editing: nothing to deploy afterwards.
            should(await page.evaluate(() => RED.nodes.dirty())).equal(false);
        });

    it("opens the new sections, closed by default: events add an output, a JWT secret stays out of the flow JSON",
        async function() {
            const inId = await page.evaluate(() => RED.nodes.filterNodes({ type: "py-websocket in" })
                .find((node) => node.server && RED.nodes.node(node.server).path === "/echo").id);
            let tray = await openNodeDialog(inId);
            const options = tray.locator("#py-ws-in-options");
            await options.waitFor({ state: "hidden" });
            await tray.locator('.py-ws-section-toggle[data-section="py-ws-in-options"]').click();
            await options.waitFor({ state: "visible" });
            await tray.locator("#node-input-events").check();

            // The listener's own sections, from the pencil.
            await configEditButton(tray, "server").click();
            const listener = page.locator(".red-ui-tray").last();
            await listener.locator("#node-config-input-path").waitFor({ state: "visible" });
            for (const section of ["py-ws-connections", "py-ws-security"]) {
                await listener.locator(`#${section}`).waitFor({ state: "hidden" });
                await listener.locator(`.py-ws-section-toggle[data-section="${section}"]`).click();
                await listener.locator(`#${section}`).waitFor({ state: "visible" });
            }
            await listener.locator("#node-config-input-hb-row").waitFor({ state: "hidden" });
            await listener.locator("#node-config-input-hb-cb").check();
            await listener.locator("#node-config-input-hb-row").waitFor({ state: "visible" });
            const authType = listener.locator("#node-config-input-authType");
            for (const [type, shown, hidden] of [["basic", "#node-config-input-users", "#node-config-input-tokens"],
                ["bearer", "#node-config-input-tokens", "#node-config-input-jwtKey"],
                ["jwt", "#node-config-input-jwtKey", "#node-config-input-users"]]) {
                await authType.selectOption(type);
                await listener.locator(shown).waitFor({ state: "visible" });
                await listener.locator(hidden).waitFor({ state: "hidden" });
            }
            await listener.locator("#node-config-input-tokenQuery").waitFor({ state: "visible" });
            should(await listener.locator("#node-config-input-tokenQuery").inputValue()).equal("token");
            await listener.locator("#node-config-input-jwtKey").fill("browser-test-secret-do-not-leak");
            await listener.locator("#node-config-input-hb").fill("15");
            await (await settledTray()).screenshot({ path: path.join(IMAGES, "dialog-listener-sections.png") });
            await closeConfigAndNodeDialogs("ok");

            const saved = await page.evaluate((id) => {
                const node = RED.nodes.node(id);
                const listenerNode = RED.nodes.node(node.server);
                return { outputs: node.outputs, events: node.events, authType: listenerNode.authType,
                    hb: listenerNode.hb };
            }, inId);
            should(saved).containDeep({ outputs: 2, events: true, authType: "jwt", hb: "15" });
            // Deployed: the secret is in the credentials file, not in the flow file nor in what the
            // admin API gives back.
            should(await page.evaluate(() => RED.nodes.dirty())).equal(true);
            await page.locator("#red-ui-header-button-deploy:not(.disabled)").click();
            await page.waitForFunction(() => !RED.nodes.dirty(), null, { timeout: ms(30000) });
            const flowFile = fs.readFileSync(path.join(red.userDir, "flows.json"), "utf8");
            should(/"authType":\s*"jwt"/.test(flowFile)).be.true(`the deployed listener in flows.json: ${flowFile.slice(0, 300)}`);
            should(flowFile.includes("browser-test-secret-do-not-leak")).be.false();
            should(JSON.stringify((await red.api("GET", "/flows")).body).includes("browser-test-secret-do-not-leak"))
                .be.false();
            const credFiles = fs.readdirSync(red.userDir).filter((name) => /_cred\.json$/.test(name));
            should(credFiles).eql(["flows_cred.json"]);

            // Opened again, the section holding a setting is open and the stored secret shows as kept.
            tray = await openNodeDialog(inId);
            await tray.locator("#py-ws-in-options").waitFor({ state: "visible" });
            await configEditButton(tray, "server").click();
            const again = page.locator(".red-ui-tray").last();
            await again.locator("#py-ws-security").waitFor({ state: "visible" });
            should(await again.locator("#node-config-input-jwtKey").inputValue()).equal("");
            should(await again.locator("#node-config-input-jwtKey").getAttribute("placeholder")).match(/kept/);
            await closeConfigAndNodeDialogs();
        });

    it("the client's Connection section, closed by default, saves the reconnect settings; connect mode offers connection events",
        async function() {
            const inId = await page.evaluate(() => RED.nodes.filterNodes({ type: "py-websocket in" })
                .find((node) => node.client && RED.nodes.node(node.client).path === "ws://localhost:1880/echo").id);
            const clientId = await page.evaluate((id) => RED.nodes.node(id).client, inId);
            // As imported from the example (or a core flow): none of the new properties.
            should(await page.evaluate((id) => RED.nodes.node(id).autoConnect, clientId)).be.undefined();

            // In connect mode the in node offers connection events too, under Options.
            let tray = await openNodeDialog(inId);
            should(await tray.locator("#node-input-mode").inputValue()).equal("client");
            await tray.locator("#py-ws-in-options").waitFor({ state: "hidden" });
            await tray.locator('.py-ws-section-toggle[data-section="py-ws-in-options"]').click();
            await tray.locator("#node-input-events").waitFor({ state: "visible" });
            await tray.locator("#node-input-events").check();

            const client = await openConfigSection(tray, "client", "py-ws-client-connection");
            should(await client.locator("#node-config-input-autoConnect").isChecked()).be.true();
            const policy = client.locator("#node-config-input-reconnectPolicy");
            should(await policy.inputValue()).equal("fixed");
            const delayLabel = client.locator('label[for="node-config-input-reconnectDelay"]');
            const maxDelay = client.locator("#node-config-input-reconnectMaxDelay");
            const factor = client.locator("#node-config-input-reconnectFactor");
            should((await delayLabel.innerText()).trim()).equal("Delay");
            await maxDelay.waitFor({ state: "hidden" });
            await factor.waitFor({ state: "hidden" });
            await policy.selectOption("backoff");
            await maxDelay.waitFor({ state: "visible" });
            await factor.waitFor({ state: "visible" });
            should((await delayLabel.innerText()).trim()).equal("First delay");

            // Checked as typed: a max delay below the first delay, a factor below 1, a fractional
            // attempt count.
            await enter(client.locator("#node-config-input-reconnectDelay"), "2");
            await checkedAsTyped(client, "node-config-input-reconnectMaxDelay", "1", "30");
            await checkedAsTyped(client, "node-config-input-reconnectFactor", "0.5", "1.5");
            await checkedAsTyped(client, "node-config-input-reconnectAttempts", "2.5", "5");
            await enter(client.locator("#node-config-input-origin"), "https://example.com");
            await client.locator("#node-config-input-autoConnect").uncheck();

            await settledTray();
            await client.locator('.py-ws-section-toggle[data-section="py-ws-client-connection"]')
                .evaluate((el) => el.scrollIntoView({ block: "start" }));
            await client.screenshot({ path: path.join(IMAGES, "dialog-client-sections.png") });
            await closeConfigAndNodeDialogs("ok");

            const saved = await page.evaluate(([id, configId]) => {
                const node = RED.nodes.node(id);
                const config = RED.nodes.node(configId);
                return { outputs: node.outputs, events: node.events, valid: config.valid,
                    client: ["autoConnect", "reconnectPolicy", "reconnectDelay", "reconnectMaxDelay",
                        "reconnectFactor", "reconnectAttempts", "origin"].reduce((all, name) => {
                        all[name] = config[name];
                        return all;
                    }, {}) };
            }, [inId, clientId]);
            should(saved).eql({ outputs: 2, events: true, valid: true, client: { autoConnect: false,
                reconnectPolicy: "backoff", reconnectDelay: "2", reconnectMaxDelay: "30", reconnectFactor: "1.5",
                reconnectAttempts: "5", origin: "https://example.com" } });
            await page.locator("#red-ui-header-button-deploy:not(.disabled)").click();
            await page.waitForFunction(() => !RED.nodes.dirty(), null, { timeout: ms(30000) });
            const deployed = (await red.api("GET", "/flows")).body;
            should(deployed.find((node) => node.id === clientId)).containDeep({ autoConnect: false,
                reconnectPolicy: "backoff", reconnectMaxDelay: "30", origin: "https://example.com" });
            const deployedIn = deployed.find((node) => node.id === inId);
            should(deployedIn).containDeep({ events: true, outputs: 2 });
            should(deployedIn.wires).have.length(2);

            // Opened again, the section holding settings is open; back to a fixed delay, backoff's
            // own settings are not kept.
            tray = await openNodeDialog(inId);
            await tray.locator("#py-ws-in-options").waitFor({ state: "visible" });
            await configEditButton(tray, "client").click();
            const again = page.locator(".red-ui-tray").last();
            await again.locator("#py-ws-client-connection").waitFor({ state: "visible" });
            should(await again.locator("#node-config-input-autoConnect").isChecked()).be.false();
            await again.locator("#node-config-input-reconnectPolicy").selectOption("fixed");
            await again.locator("#node-config-input-reconnectMaxDelay").waitFor({ state: "hidden" });
            await closeConfigAndNodeDialogs("ok", "cancel");
            should(await page.evaluate((id) => {
                const config = RED.nodes.node(id);
                return [config.reconnectPolicy, config.reconnectDelay, config.reconnectMaxDelay, config.reconnectFactor];
            }, clientId)).eql(["fixed", "2", "", ""]);
        });

    it("the listener's backplane fields follow their box, are checked and saved; the password goes to the credentials",
        async function() {
            // The /echo-json listener of the example: nothing set in its Connections section yet.
            const inId = await page.evaluate(() => RED.nodes.filterNodes({ type: "py-websocket in" })
                .find((node) => node.server && RED.nodes.node(node.server).path === "/echo-json").id);
            const listenerId = await page.evaluate((id) => RED.nodes.node(id).server, inId);
            should(await page.evaluate((id) => RED.nodes.node(id).backplane, listenerId)).not.be.true();

            let tray = await openNodeDialog(inId);
            const listener = await openConfigSection(tray, "server", "py-ws-connections");
            const box = listener.locator("#node-config-input-backplane");
            const fields = ["#node-config-input-backplaneUrl", "#node-config-input-backplaneNamespace",
                "#node-config-input-backplanePassword"].map((id) => listener.locator(id));
            const all = (state) => Promise.all(fields.map((field) => field.waitFor({ state })));
            should(await box.isChecked()).be.false();
            await all("hidden");
            await box.check();
            await all("visible");
            await box.uncheck();
            await all("hidden");
            await box.check();
            await all("visible");

            // Checked as typed: a URL that is not Redis's, a namespace with a space.
            await checkedAsTyped(listener, "node-config-input-backplaneUrl", "http://127.0.0.1:6379", "redis://127.0.0.1:1/0");
            await checkedAsTyped(listener, "node-config-input-backplaneNamespace", "browser ns", "browser-ns");
            await listener.locator("#node-config-input-backplanePassword").fill("browser-redis-pw-do-not-leak");
            await closeConfigAndNodeDialogs("ok");

            should(await page.evaluate((id) => {
                const config = RED.nodes.node(id);
                return { backplane: config.backplane, backplaneUrl: config.backplaneUrl,
                    backplaneNamespace: config.backplaneNamespace, valid: config.valid };
            }, listenerId)).eql({ backplane: true, backplaneUrl: "redis://127.0.0.1:1/0",
                backplaneNamespace: "browser-ns", valid: true });
            await page.locator("#red-ui-header-button-deploy:not(.disabled)").click();
            await page.waitForFunction(() => !RED.nodes.dirty(), null, { timeout: ms(30000) });

            // Deployed: URL and namespace in the flow, the password in the credentials only.
            const deployed = (await red.api("GET", "/flows")).body;
            should(deployed.find((node) => node.id === listenerId)).containDeep({ backplane: true,
                backplaneUrl: "redis://127.0.0.1:1/0", backplaneNamespace: "browser-ns" });
            should(JSON.stringify(deployed).includes("browser-redis-pw-do-not-leak")).be.false();
            should(fs.readFileSync(path.join(red.userDir, "flows.json"), "utf8")
                .includes("browser-redis-pw-do-not-leak")).be.false();
            // credentialSecret is false in the test's settings: the credentials file is plain JSON.
            const credentials = JSON.parse(fs.readFileSync(path.join(red.userDir, "flows_cred.json"), "utf8"));
            should(credentials[listenerId]).have.property("backplanePassword", "browser-redis-pw-do-not-leak");

            // Opened again: the section is open, the box ticked, the stored password kept, not shown.
            tray = await openNodeDialog(inId);
            await configEditButton(tray, "server").click();
            const again = page.locator(".red-ui-tray").last();
            await again.locator("#py-ws-connections").waitFor({ state: "visible" });
            should(await again.locator("#node-config-input-backplane").isChecked()).be.true();
            await again.locator("#node-config-input-backplaneUrl").waitFor({ state: "visible" });
            should(await again.locator("#node-config-input-backplaneUrl").inputValue()).equal("redis://127.0.0.1:1/0");
            should(await again.locator("#node-config-input-backplaneNamespace").inputValue()).equal("browser-ns");
            should(await again.locator("#node-config-input-backplanePassword").inputValue())
                .not.equal("browser-redis-pw-do-not-leak");
            await closeConfigAndNodeDialogs();
            should(await page.evaluate(() => RED.nodes.dirty())).equal(false);
        });
});
