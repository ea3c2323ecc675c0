// Drives the web console (/console) in headless Chromium (Debian's chromium
// through playwright-core) as a person would, with a fake microphone that
// plays a WAV file once; prints what the pages showed as one JSON object.
// test_console.py runs it and decides what is right.
//
// usage: node console_e2e.js CONFIG_JSON
//   {chromium, base, domain, user, password, project, mic_wav, file_wav,
//    long_wav (over 60 s), sentences (finals the live page must show),
//    shots (folder or null), vocabulary_name, live_timeout_ms}
//   or, for a server without authentication, {chromium, base, project_id,
//    file_wav}: the project id instead of a sign-in, the file page only
const { chromium } = require('playwright-core');

const cfg = JSON.parse(process.argv[2]);
const out = { console_errors: [], refused: [] };

// Clicks Transcribe on the file page and waits for the result (or an
// error); what the page then shows.
async function transcribed(page) {
  await page.click('#file-go');
  await page.waitForFunction(
    () => document.querySelector('#file-wave').dataset.transcribed === 'yes' || !document.querySelector('#file-error').hidden,
    null,
    { timeout: 120000 },
  );
  return {
    text: (await page.textContent('#file-text')).trim(),
    segments: await page.$$eval('#file-segments tr.segment', (rows) =>
      rows.map((r) => ({
        start: Number(r.dataset.start),
        end: Number(r.dataset.end),
        text: r.querySelector('.seg-text').textContent,
        words: [...r.querySelectorAll('.word')].map((w) => ({
          word: w.firstChild.textContent,
          start: Number(w.dataset.start),
          end: Number(w.dataset.end),
        })),
      })),
    ),
    canvas_words: Number(await page.getAttribute('#file-wave', 'data-words')),
    canvas_segments: Number(await page.getAttribute('#file-wave', 'data-segments')),
    error: (await page.isVisible('#file-error')) ? (await page.textContent('#file-error')).trim() : null,
    status: (await page.textContent('#file-status')).trim(),
  };
}

async function shot(page, name) {
  if (!cfg.shots) return;
  await page.waitForTimeout(150); // let the last layout and canvas settle
  await page.screenshot({ path: `${cfg.shots}/${name}.png`, fullPage: true });
}

async function errorBox(page, id) {
  const el = page.locator(`#${id}`);
  await el.waitFor({ state: 'visible', timeout: 30000 });
  return { code: await el.getAttribute('data-code'), text: (await el.textContent()).trim() };
}

(async () => {
  const browser = await chromium.launch({
    executablePath: cfg.chromium,
    args: [
      '--no-sandbox',
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${cfg.mic_wav}%noloop`,
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error') out.console_errors.push(m.text());
    });
    page.on('pageerror', (e) => out.console_errors.push(String(e)));
    out.refused = [];
    page.on('response', (r) => {
      if (r.status() >= 400) out.refused.push(`${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`);
    });

    if (cfg.project_id) {
      // a server without authentication: a project id, no sign-in; the
      // file page's request goes without a token
      await page.goto(`${cfg.base}/console`);
      await page.click('.noauth summary');
      await page.fill('#noauth-project', cfg.project_id);
      await page.click('#noauth-form button');
      await page.waitForSelector('#page-live:not([hidden])');
      out.signed_in_as = (await page.textContent('#who-name')).trim();
      await page.click('a[data-page=file]');
      await page.setInputFiles('#file-input', cfg.file_wav);
      await page.waitForFunction(() => !document.querySelector('#file-go').disabled, null, { timeout: 30000 });
      await page.click('#file-go');
      await page.waitForFunction(
        () => document.querySelector('#file-wave').dataset.transcribed === 'yes' || !document.querySelector('#file-error').hidden,
        null,
        { timeout: 60000 },
      );
      out.file = { text: (await page.textContent('#file-text')).trim() };
      console.log(JSON.stringify(out));
      return;
    }

    // ---- sign-in: a wrong password first ----
    const resp = await page.goto(`${cfg.base}/console`);
    out.index = { status: resp.status(), csp: resp.headers()['content-security-policy'] || null };
    await page.fill('#signin-domain', cfg.domain);
    await page.fill('#signin-user', cfg.user);
    await page.fill('#signin-project', cfg.project);
    await page.fill('#signin-password', 'not-the-password');
    await page.click('#signin-submit');
    out.wrong_password = await errorBox(page, 'signin-error');
    await page.fill('#signin-password', cfg.password);
    await shot(page, 'signin');
    await page.click('#signin-submit');
    await page.waitForSelector('#page-live:not([hidden])', { timeout: 30000 });
    out.signed_in_as = (await page.textContent('#who-name')).trim();

    // ---- live: the fake microphone plays the WAV once ----
    await page.waitForFunction(() => document.querySelector('#live-property').options.length > 0);
    await page.click('#live-start');
    // the screenshot: a final sentence, and the next one as it is heard
    await page.waitForFunction(
      () => document.querySelectorAll('#live-final li').length >= 1 && document.querySelector('#live-interim').textContent.length >= 5,
      null,
      { timeout: cfg.live_timeout_ms || 60000, polling: 50 },
    ).catch(() => {});
    await shot(page, 'live');
    await page.waitForFunction(
      (n) => document.querySelectorAll('#live-final li').length >= n,
      cfg.sentences,
      { timeout: cfg.live_timeout_ms || 60000, polling: 100 },
    ).catch(() => {});
    out.live_interims = Number(await page.getAttribute('#live-transcript', 'data-interims'));
    await page.click('#live-stop').catch(() => {});
    await page.waitForFunction(() => document.querySelector('#live-transcript').dataset.state === 'ended', null, {
      timeout: 30000,
    });
    out.live_finals = await page.$$eval('#live-final li', (lis) => lis.map((li) => li.dataset.text));
    out.live_status = (await page.textContent('#live-status')).trim();
    out.live_error = (await page.isVisible('#live-error')) ? (await page.textContent('#live-error')).trim() : null;

    // ---- file: a held-out WAV, its segments and word marks ----
    await page.click('a[data-page=file]');
    await page.waitForSelector('#page-file:not([hidden])');
    await page.setInputFiles('#file-input', cfg.file_wav);
    await page.waitForFunction(() => !document.querySelector('#file-go').disabled, null, { timeout: 30000 });
    out.file = await transcribed(page);
    await shot(page, 'file');
    // over 60 s: uploaded as it is and transcribed by a job
    await page.setInputFiles('#file-input', cfg.long_wav);
    await page.waitForFunction(() => !document.querySelector('#file-go').disabled, null, { timeout: 30000 });
    out.long_file = await transcribed(page);


    // ---- speech synthesis ----
    await page.click('a[data-page=tts]');
    await page.waitForFunction(() => document.querySelector('#tts-voice').options.length > 1);
    out.tts_voices = await page.$$eval('#tts-voice option', (o) => o.length);
    await page.selectOption('#tts-voice', 'chinese_xiaoyu_common');
    await page.fill('#tts-speed', '100');
    await page.fill('#tts-pitch', '-50');
    await page.fill('#tts-volume', '70');
    await page.click('#tts-go');
    await page.waitForFunction(
      () => {
        const a = document.querySelector('#tts-audio');
        return (a.duration > 0 && Number.isFinite(a.duration)) || !document.querySelector('#tts-error').hidden;
      },
      null,
      { timeout: 60000 },
    );
    out.tts = await page.evaluate(() => {
      const a = document.querySelector('#tts-audio');
      return {
        duration: a.duration,
        src_is_blob: a.src.startsWith('blob:'),
        status: document.querySelector('#tts-status').textContent,
        error: document.querySelector('#tts-error').hidden ? null : document.querySelector('#tts-error').textContent,
      };
    });
    await page.waitForFunction(() => /s, /.test(document.querySelector('#tts-status').textContent));
    await shot(page, 'tts');
    // an error the server gives: the text is over 500 characters
    await page.evaluate(() => {
      const t = document.querySelector('#tts-text');
      t.removeAttribute('maxlength');
      t.value = '长'.repeat(501);
    });
    await page.click('#tts-go');
    out.tts_too_long = await errorBox(page, 'tts-error');

    // ---- vocabularies: create, list, a refused word, delete ----
    await page.click('a[data-page=vocabularies]');
    await page.waitForSelector('#page-vocabularies:not([hidden])');
    const name = cfg.vocabulary_name;
    await page.click('#vocab-new');
    await page.fill('#vocab-name', name);
    await page.fill('#vocab-description', 'hot words of the console test');
    await page.fill('#vocab-contents', '华为云\n语音识别|5\n实时转写');
    await page.click('#vocab-save');
    await page.waitForSelector(`#vocab-list tr[data-name="${name}"]`, { timeout: 30000 });
    out.vocab_after_create = await page.$$eval('#vocab-list tbody tr[data-name]', (r) => r.map((x) => x.dataset.name));
    out.vocab_editor = {
      title: (await page.textContent('#vocab-editor-title')).trim(),
      contents: await page.inputValue('#vocab-contents'),
    };
    // a second one so the list shows more than a row in the screenshot
    await page.click('#vocab-new');
    await page.fill('#vocab-name', `${name}_b`);
    await page.fill('#vocab-contents', '北京\n上海');
    await page.click('#vocab-save');
    await page.waitForSelector(`#vocab-list tr[data-name="${name}_b"]`, { timeout: 30000 });
    await page.click(`#vocab-list tr[data-name="${name}"]`);
    await page.waitForFunction((n) => document.querySelector('#vocab-name').value === n, name);
    await shot(page, 'vocabularies');
    // an update the server refuses (a digit in a word): its SIS error is shown
    await page.fill('#vocab-contents', '华为云\n5G网络');
    await page.click('#vocab-save');
    out.vocab_bad_word = await errorBox(page, 'vocab-error');
    for (const n of [name, `${name}_b`]) {
      await page.click(`#vocab-list tr[data-name="${n}"]`);
      await page.waitForFunction((x) => document.querySelector('#vocab-name').value === x, n);
      await page.click('#vocab-delete');
      await page.click('#vocab-delete');
      await page.waitForSelector(`#vocab-list tr[data-name="${n}"]`, { state: 'detached', timeout: 30000 });
    }
    out.vocab_after_delete = await page.$$eval('#vocab-list tbody tr[data-name]', (r) => r.map((x) => x.dataset.name));

    // ---- a refused WebSocket upgrade (a token the server does not know):
    // the page learns the SIS error through the REST API ----
    const token = await page.evaluate(() => JSON.parse(sessionStorage.getItem('sisd-console-session')).token);
    const setToken = (t) =>
      page.evaluate((x) => {
        const s = JSON.parse(sessionStorage.getItem('sisd-console-session'));
        s.token = x;
        sessionStorage.setItem('sisd-console-session', JSON.stringify(s));
      }, t);
    await setToken('sis1.not-a-token');
    // (a new hash alone is no new load: reload, so the page reads it)
    await page.goto(`${cfg.base}/console#live`);
    await page.reload();
    await page.waitForFunction(() => document.querySelector('#live-property').options.length > 0);
    await page.click('#live-start');
    out.live_refused = await errorBox(page, 'live-error').catch(async (e) => {
      throw new Error(`${e.message}; live status: ${await page.textContent('#live-status')}`);
    });
    out.live_refused.status = (await page.textContent('#live-status')).trim();
    await setToken(token);
    await page.reload();
    await page.waitForSelector('#page-live:not([hidden])');

    // ---- sign out: back to the sign-in page, the token revoked ----
    await page.click('#sign-out');
    await page.waitForSelector('#page-signin:not([hidden])');
    out.token_after_sign_out = token;
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(out));
})().catch((e) => {
  console.log(JSON.stringify({ ...out, failure: String(e && e.stack ? e.stack : e) }));
  process.exit(1);
});
