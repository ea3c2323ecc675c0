// The sisd web console: sign-in, live transcription, file transcription,
// speech synthesis and the vocabulary editor, all through the public SIS
// API of the server that serves this page (no other origin is reachable:
// the page's Content-Security-Policy allows only this one).
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const SESSION_KEY = 'sisd-console-session';
  const MAX_FILE_SECONDS = 60; // asr/short-audio's limit

  // ---- session: {token, project_id, project, user, domain, expires_at} ----

  let session = null;
  try {
    session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
  } catch (_) {
    session = null;
  }

  // a token past its expiry opens nothing: sign in again
  if (session && session.expires_at && Date.parse(session.expires_at) <= Date.now()) {
    sessionStorage.removeItem(SESSION_KEY);
    session = null;
  }

  function saveSession(s) {
    session = s;
    if (s) sessionStorage.setItem(SESSION_KEY, JSON.stringify(s));
    else sessionStorage.removeItem(SESSION_KEY);
  }

  // ---- errors: SIS {error_code, error_msg}, IAM {error: {code, title, message}} ----

  class ApiError extends Error {
    constructor(code, msg) {
      super(msg);
      this.code = code;
    }
  }

  async function errorOf(resp) {
    let body = null;
    try {
      body = await resp.json();
    } catch (_) {
      body = null;
    }
    if (body && body.error_code) return new ApiError(body.error_code, body.error_msg || '');
    if (body && body.error && typeof body.error === 'object') {
      const e = body.error;
      return new ApiError(String(e.code || resp.status), e.message || e.title || '');
    }
    return new ApiError(String(resp.status), resp.statusText || 'request failed');
  }

  function showError(box, err) {
    const el = $(box);
    el.textContent = '';
    if (!err) {
      el.hidden = true;
      return;
    }
    const code = document.createElement('code');
    code.textContent = err.code || 'error';
    el.append(code, document.createTextNode(err.message || String(err)));
    el.dataset.code = err.code || '';
    el.hidden = false;
  }

  // ---- REST ----

  function projectPath(rest) {
    return `/v1/${encodeURIComponent(session.project_id)}/${rest}`;
  }

  async function api(method, rest, body) {
    const headers = {};
    if (session.token) headers['X-Auth-Token'] = session.token;
    if (body !== undefined) headers['Content-Type'] = 'application/json;charset=utf-8';
    const resp = await fetch(projectPath(rest), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!resp.ok) throw await errorOf(resp);
    const text = await resp.text();
    return text ? JSON.parse(text) : null;
  }

  // ---- pages ----

  const PAGES = ['live', 'file', 'tts', 'vocabularies'];
  const entered = {};

  function route() {
    const want = location.hash.replace(/^#/, '');
    const page = !session ? 'signin' : PAGES.includes(want) ? want : 'live';
    for (const p of ['signin', ...PAGES]) $(`page-${p}`).hidden = p !== page;
    $('nav').hidden = !session;
    $('who').hidden = !session;
    for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.page === page);
    if (session) {
      $('who-name').textContent = session.token
        ? `${session.user} @ ${session.domain} · ${session.project}`
        : `project ${session.project_id} (no authentication)`;
    }
    document.body.dataset.page = page;
    if (page === 'file') FileView.draw();
    if (session && !entered[page]) {
      entered[page] = true;
      if (page === 'vocabularies') Vocab.load(0);
    }
  }

  window.addEventListener('hashchange', route);

  // ---- models and voices ----

  let asrProperties = null;
  async function properties() {
    if (!asrProperties) {
      let props = [];
      try {
        const h = await (await fetch('/health')).json();
        for (const p of h.packs || []) {
          if (p.kind === 'offline_asr' || p.kind === 'streaming_asr') props.push(...(p.properties || []));
        }
      } catch (_) {
        props = [];
      }
      props = [...new Set(props)].filter((p) => /_16k_/.test(p)).sort();
      asrProperties = props.length ? props : ['chinese_16k_general'];
    }
    return asrProperties;
  }

  async function fillProperties(id) {
    const sel = $(id);
    if (sel.options.length) return;
    for (const p of await properties()) sel.add(new Option(p, p, false, p === 'chinese_16k_general'));
  }

  // ---- sign-in ----

  $('signin-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    showError('signin-error', null);
    $('signin-submit').disabled = true;
    const domain = $('signin-domain').value.trim();
    const user = $('signin-user').value.trim();
    const project = $('signin-project').value.trim();
    const body = {
      auth: {
        identity: {
          methods: ['password'],
          password: { user: { name: user, password: $('signin-password').value, domain: { name: domain } } },
        },
        scope: { project: { name: project } },
      },
    };
    try {
      const resp = await fetch('/v3/auth/tokens', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json;charset=utf8' },
        body: JSON.stringify(body),
      });
      if (!resp.ok) throw await errorOf(resp);
      const token = resp.headers.get('X-Subject-Token');
      const t = (await resp.json()).token;
      if (!token || !t.project) throw new ApiError(String(resp.status), 'the answer has no project-scoped token');
      $('signin-password').value = '';
      saveSession({
        token,
        project_id: t.project.id,
        project: t.project.name,
        user: t.user.name,
        domain: t.user.domain.name,
        expires_at: t.expires_at,
      });
      location.hash = '#live';
      route();
    } catch (err) {
      showError('signin-error', err);
    } finally {
      $('signin-submit').disabled = false;
    }
  });

  $('noauth-form').addEventListener('submit', (e) => {
    e.preventDefault();
    saveSession({ token: null, project_id: $('noauth-project').value.trim() });
    location.hash = '#live';
    route();
  });

  $('sign-out').addEventListener('click', async () => {
    Live.stop();
    const token = session && session.token;
    saveSession(null);
    for (const k of Object.keys(entered)) delete entered[k];
    if (token) {
      // revokes the token itself; a failure changes nothing here
      fetch('/v3/auth/tokens', {
        method: 'DELETE',
        headers: { 'X-Auth-Token': token, 'X-Subject-Token': token },
      }).catch(() => {});
    }
    location.hash = '';
    route();
  });

  // ---- live transcription: AudioWorklet → 16 kHz PCM → rasr/continue-stream ----

  const Live = (() => {
    let ws = null;
    let ctx = null;
    let stream = null;
    let node = null;
    let started = false; // the server answered START
    let queue = []; // frames captured before that
    let interims = 0;

    function status(text) {
      $('live-status').textContent = text;
    }

    function fmt(ms) {
      return (ms / 1000).toFixed(1) + ' s';
    }

    function onResult(m) {
      for (const seg of m.segments || []) {
        const text = (seg.result && seg.result.text) || '';
        if (seg.is_final) {
          $('live-interim').textContent = '';
          if (!text) continue;
          const li = document.createElement('li');
          li.textContent = text;
          const t = document.createElement('span');
          t.className = 't';
          t.textContent = `${fmt(seg.start_time)} – ${fmt(seg.end_time)}`;
          li.append(t);
          li.dataset.text = text;
          $('live-final').append(li);
        } else {
          interims += 1;
          $('live-interim').textContent = text;
          $('live-transcript').dataset.interims = String(interims);
        }
        $('live-empty').hidden = true;
      }
    }

    function releaseAudio() {
      if (stream) for (const t of stream.getTracks()) t.stop();
      if (ctx) ctx.close().catch(() => {});
      stream = null;
      ctx = null;
      node = null;
      $('live-level').style.width = '0';
    }

    function finished(text) {
      releaseAudio();
      if (ws) {
        const w = ws;
        ws = null;
        if (w.readyState <= 1) w.close(1000);
      }
      started = false;
      queue = [];
      $('live-start').disabled = false;
      $('live-stop').disabled = true;
      status(text);
      $('live-transcript').dataset.state = 'ended';
    }

    // A refused upgrade gives the page no status or body: ask the REST API
    // with the same credentials to learn the SIS error.
    async function whyRefused() {
      try {
        await api('GET', 'asr/vocabularies?limit=1');
        return new ApiError('connection', 'the WebSocket connection failed');
      } catch (err) {
        return err;
      }
    }

    async function start() {
      showError('live-error', null);
      $('live-final').textContent = '';
      $('live-interim').textContent = '';
      $('live-empty').hidden = false;
      $('live-transcript').dataset.state = 'running';
      interims = 0;
      $('live-transcript').dataset.interims = '0';
      $('live-start').disabled = true;
      status('Opening the microphone…');
      try {
        stream = await navigator.mediaDevices.getUserMedia({
          audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
        });
        ctx = new AudioContext();
        await ctx.audioWorklet.addModule('/console/capture-worklet.js');
        const src = ctx.createMediaStreamSource(stream);
        node = new AudioWorkletNode(ctx, 'pcm16k-capture', { processorOptions: { frameMs: 100 } });
        // silent output: the node must be pulled by the graph to run
        const mute = ctx.createGain();
        mute.gain.value = 0;
        src.connect(node).connect(mute).connect(ctx.destination);
      } catch (err) {
        showError('live-error', new ApiError('microphone', err.message || String(err)));
        finished('Idle');
        return;
      }
      node.port.onmessage = (e) => {
        if (e.data === 'flushed') {
          if (ws && ws.readyState === 1) ws.send(JSON.stringify({ command: 'END', cancel: false }));
          return;
        }
        $('live-level').style.width = Math.min(100, Math.round(e.data.peak * 140)) + '%';
        if (!ws || ws.readyState !== 1) return;
        if (started) ws.send(e.data.pcm);
        else queue.push(e.data.pcm);
      };
      const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
      const url = `${scheme}//${location.host}${projectPath('rasr/continue-stream')}`;
      // a browser cannot set X-Auth-Token on a WebSocket: the token goes as a
      // subprotocol the server reads and never echoes (it answers "sis")
      const protocols = session.token ? ['sis', `sis-token.${session.token}`] : [];
      status('Connecting…');
      ws = new WebSocket(url, protocols);
      ws.binaryType = 'arraybuffer';
      const socket = ws;
      let opened = false;
      socket.onopen = () => {
        opened = true;
        socket.send(
          JSON.stringify({
            command: 'START',
            config: {
              audio_format: 'pcm16k16bit',
              property: $('live-property').value,
              add_punc: $('live-punc').checked ? 'yes' : 'no',
              digit_norm: $('live-digits').checked ? 'yes' : 'no',
              interim_results: 'yes',
              vad_tail: 500,
              max_seconds: 30,
            },
          }),
        );
      };
      socket.onmessage = (e) => {
        if (typeof e.data !== 'string') return;
        let m;
        try {
          m = JSON.parse(e.data);
        } catch (_) {
          return;
        }
        switch (m.resp_type) {
          case 'START':
            started = true;
            for (const f of queue) socket.send(f);
            queue = [];
            $('live-stop').disabled = false;
            status('Listening');
            break;
          case 'RESULT':
            onResult(m);
            break;
          case 'EVENT':
            status(`Listening (${m.event})`);
            break;
          case 'ERROR':
          case 'FATAL_ERROR':
            showError('live-error', new ApiError(m.error_code, m.error_msg));
            break;
          case 'END':
            finished(m.reason === 'NORMAL' ? 'Ended' : `Ended (${m.reason})`);
            break;
          default:
            break;
        }
      };
      socket.onclose = async () => {
        if (ws !== socket) return;
        if (!opened) showError('live-error', await whyRefused());
        finished(opened ? 'Disconnected' : 'Refused');
      };
    }

    // END after the last captured audio; the server answers the remaining
    // results and END (then the connection closes)
    function stop() {
      if (!ws) return;
      $('live-stop').disabled = true;
      status('Finishing…');
      if (stream) for (const t of stream.getTracks()) t.stop();
      if (node && started) {
        node.port.postMessage('flush');
        // the server answers END within moments; do not wait forever
        const socket = ws;
        setTimeout(() => {
          if (ws === socket) finished('Ended (no answer to END)');
        }, 15000);
      } else {
        finished('Stopped');
      }
    }

    $('live-start').addEventListener('click', start);
    $('live-stop').addEventListener('click', stop);
    return { stop };
  })();

  // ---- file transcription: decode → 16 kHz PCM → asr/short-audio ----

  const FileView = (() => {
    let samples = null; // Float32Array at 16 kHz
    let words = [];
    let segments = [];
    let audioUrl = null;
    const RATE = 16000;
    // a pause this long between two words starts a new segment
    const SEGMENT_GAP_MS = 400;

    function status(t) {
      $('file-status').textContent = t;
    }

    let chosen = null; // the File, uploaded as it is when it is long

    function upload(file, onProgress) {
      // XMLHttpRequest rather than fetch: it reports the upload's progress
      return new Promise((resolve, reject) => {
        const x = new XMLHttpRequest();
        x.open('POST', projectPath('asr/transcriber/uploads'));
        if (session.token) x.setRequestHeader('X-Auth-Token', session.token);
        x.setRequestHeader('Content-Type', 'application/octet-stream');
        x.upload.onprogress = (e) => {
          if (e.lengthComputable) onProgress(e.loaded / e.total);
        };
        x.onload = () => {
          let body = null;
          try {
            body = JSON.parse(x.responseText);
          } catch (_) {
            body = null;
          }
          if (x.status === 200 && body) return resolve(body);
          if (body && body.error_code) return reject(new ApiError(body.error_code, body.error_msg || ''));
          reject(new ApiError(String(x.status), x.statusText || 'upload failed'));
        };
        x.onerror = () => reject(new ApiError('network', 'the upload did not reach the server'));
        x.send(file);
      });
    }

    // Files over 60 s: uploaded, transcribed by a job (its segments and
    // their words), then the upload is deleted.
    async function transcribeLong(file, config) {
      const up = await upload(file, (f) => status(`Uploading… ${Math.round(f * 100)} %`));
      try {
        const job = await api('POST', 'asr/transcriber/jobs', { data_url: up.data_url, config });
        const began = Date.now();
        for (;;) {
          const doc = await api('GET', `asr/transcriber/jobs/${encodeURIComponent(job.job_id)}`);
          if (doc.status === 'FINISHED') return doc;
          if (doc.status === 'ERROR') throw new ApiError(doc.error_code || 'ERROR', doc.error_msg || 'the job failed');
          status(`Job ${job.job_id.slice(0, 8)}… ${doc.status} (${Math.round((Date.now() - began) / 1000)} s)`);
          await new Promise((r) => setTimeout(r, 1000));
        }
      } finally {
        api('DELETE', `asr/transcriber/uploads/${encodeURIComponent(up.upload_id)}`).catch(() => {});
      }
    }

    async function decode(file) {
      const bytes = await file.arrayBuffer();
      // decoded straight at 16 kHz (the context's rate), then mixed to mono
      const ctx = new OfflineAudioContext(1, RATE, RATE);
      const buf = await ctx.decodeAudioData(bytes);
      const out = new Float32Array(buf.length);
      for (let c = 0; c < buf.numberOfChannels; c++) {
        const ch = buf.getChannelData(c);
        for (let i = 0; i < ch.length; i++) out[i] += ch[i] / buf.numberOfChannels;
      }
      return out;
    }

    function pcm16Base64(f) {
      const bytes = new Uint8Array(f.length * 2);
      const view = new DataView(bytes.buffer);
      for (let i = 0; i < f.length; i++) {
        const s = Math.max(-1, Math.min(1, f[i]));
        view.setInt16(i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
      }
      let bin = '';
      for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
      return btoa(bin);
    }

    function draw(playhead) {
      const canvas = $('file-wave');
      const dpr = window.devicePixelRatio || 1;
      const w = canvas.clientWidth;
      const h = canvas.clientHeight;
      if (canvas.width !== Math.round(w * dpr)) {
        canvas.width = Math.round(w * dpr);
        canvas.height = Math.round(h * dpr);
      }
      const g = canvas.getContext('2d');
      g.setTransform(dpr, 0, 0, dpr, 0, 0);
      g.clearRect(0, 0, w, h);
      const axis = 18; // time axis at the bottom
      const top = 16; // word labels at the top
      const mid = top + (h - axis - top) / 2;
      const amp = (h - axis - top) / 2;
      if (!samples) {
        g.fillStyle = '#8a94a3';
        g.font = '14px system-ui, sans-serif';
        g.fillText('Choose an audio file: its waveform appears here.', 12, h / 2);
        return;
      }
      const dur = (samples.length / RATE) * 1000;
      const x = (ms) => (ms / dur) * w;
      // segments
      segments.forEach((s, i) => {
        g.fillStyle = 'rgba(21, 101, 192, 0.13)';
        g.fillRect(x(s.start), top, Math.max(2, x(s.end) - x(s.start)), h - axis - top);
        g.fillStyle = 'rgba(21, 101, 192, 0.85)';
        g.font = 'bold 11px system-ui, sans-serif';
        g.fillText(`#${i + 1}`, x(s.start) + 3, h - axis - 4);
      });
      // waveform: min/max per column
      g.fillStyle = '#5f7da8';
      const per = samples.length / w;
      for (let px = 0; px < w; px++) {
        let lo = 0;
        let hi = 0;
        const a = Math.floor(px * per);
        const b = Math.min(samples.length, Math.floor((px + 1) * per) + 1);
        for (let i = a; i < b; i++) {
          const v = samples[i];
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
        g.fillRect(px, mid - hi * amp, 1, Math.max(1, (hi - lo) * amp));
      }
      // words: a tick at each start, the word above when there is room
      g.font = '12px system-ui, "Noto Sans CJK SC", sans-serif';
      let lastLabelEnd = -1;
      for (const wd of words) {
        const wx = x(wd.start_time);
        g.fillStyle = '#e65100';
        g.fillRect(wx, top, 1, h - axis - top);
        const tw = g.measureText(wd.word).width;
        if (wx > lastLabelEnd + 2) {
          g.fillStyle = '#bf360c';
          g.fillText(wd.word, wx + 1, top - 3);
          lastLabelEnd = wx + tw;
        }
      }
      // time axis: a tick every second (or every 5 s for long files)
      g.fillStyle = '#5d6878';
      g.font = '11px system-ui, sans-serif';
      g.fillRect(0, h - axis, w, 1);
      const stepS = dur > 30000 ? 5 : 1;
      for (let s = 0; s * 1000 <= dur; s += stepS) {
        const tx = x(s * 1000);
        g.fillRect(tx, h - axis, 1, 4);
        g.fillText(`${s}s`, Math.min(tx + 2, w - 22), h - 4);
      }
      if (playhead !== undefined) {
        g.fillStyle = '#c62828';
        g.fillRect(x(playhead), 0, 2, h - axis);
      }
      canvas.dataset.words = String(words.length);
      canvas.dataset.segments = String(segments.length);
    }

    function tickPlayhead() {
      const a = $('file-audio');
      if (a.paused) return draw();
      draw(a.currentTime * 1000);
      requestAnimationFrame(tickPlayhead);
    }

    function secs(ms) {
      return (ms / 1000).toFixed(2);
    }

    function showSegments() {
      const body = $('file-segments').querySelector('tbody');
      body.textContent = '';
      segments.forEach((s, i) => {
        const tr = document.createElement('tr');
        tr.className = 'segment';
        tr.dataset.start = String(s.start);
        tr.dataset.end = String(s.end);
        const n = document.createElement('td');
        n.className = 'num';
        n.textContent = String(i + 1);
        const a = document.createElement('td');
        a.className = 'num';
        a.textContent = secs(s.start) + ' s';
        const b = document.createElement('td');
        b.className = 'num';
        b.textContent = secs(s.end) + ' s';
        const t = document.createElement('td');
        const text = document.createElement('div');
        text.className = 'seg-text';
        text.textContent = s.text || s.words.map((w) => w.word).join('');
        const ws = document.createElement('div');
        ws.className = 'words';
        for (const w of s.words) {
          const chip = document.createElement('span');
          chip.className = 'word';
          chip.dataset.start = String(w.start_time);
          chip.dataset.end = String(w.end_time);
          chip.textContent = w.word;
          const small = document.createElement('small');
          small.textContent = secs(w.start_time);
          chip.append(small);
          ws.append(chip);
        }
        t.append(text, ws);
        tr.append(n, a, b, t);
        tr.addEventListener('click', () => {
          const au = $('file-audio');
          au.currentTime = s.start / 1000;
          au.play().catch(() => {});
        });
        body.append(tr);
      });
      $('file-segments').hidden = segments.length === 0;
    }

    function toSegments(ws) {
      const out = [];
      for (const w of ws) {
        const last = out[out.length - 1];
        if (last && w.start_time - last.end < SEGMENT_GAP_MS) {
          last.words.push(w);
          last.end = Math.max(last.end, w.end_time);
        } else {
          out.push({ start: w.start_time, end: w.end_time, words: [w] });
        }
      }
      return out;
    }

    $('file-input').addEventListener('change', async () => {
      showError('file-error', null);
      const file = $('file-input').files[0];
      samples = null;
      chosen = file || null;
      words = [];
      segments = [];
      $('file-text').textContent = '';
      showSegments();
      $('file-go').disabled = true;
      delete $('file-wave').dataset.transcribed;
      if (audioUrl) URL.revokeObjectURL(audioUrl);
      audioUrl = null;
      $('file-audio').hidden = true;
      if (!file) {
        status('No file');
        return draw();
      }
      status('Decoding…');
      try {
        samples = await decode(file);
      } catch (err) {
        showError('file-error', new ApiError('decode', `the browser cannot decode ${file.name}: ${err.message || err}`));
        status('No file');
        return draw();
      }
      audioUrl = URL.createObjectURL(file);
      $('file-audio').src = audioUrl;
      $('file-audio').hidden = false;
      const seconds = samples.length / RATE;
      draw();
      status(
        seconds > MAX_FILE_SECONDS
          ? `${file.name}: ${seconds.toFixed(1)} s — over ${MAX_FILE_SECONDS} s, uploaded and transcribed by a job`
          : `${file.name}: ${seconds.toFixed(1)} s`,
      );
      $('file-go').disabled = false;
    });

    $('file-go').addEventListener('click', async () => {
      if (!samples) return;
      showError('file-error', null);
      $('file-go').disabled = true;
      status('Transcribing…');
      const settings = {
        property: $('file-property').value,
        add_punc: $('file-punc').checked ? 'yes' : 'no',
        digit_norm: $('file-digits').checked ? 'yes' : 'no',
        need_word_info: 'yes',
      };
      try {
        let text;
        if (samples.length / RATE > MAX_FILE_SECONDS) {
          const doc = await transcribeLong(chosen, { audio_format: 'auto', ...settings });
          segments = (doc.segments || []).map((g) => ({
            start: g.start_time,
            end: g.end_time,
            words: (g.result && g.result.word_info) || [],
            text: (g.result && g.result.text) || '',
          }));
          words = segments.flatMap((g) => g.words);
          text = segments.map((g) => g.text).join('');
        } else {
          const r = await api('POST', 'asr/short-audio', {
            data: pcm16Base64(samples),
            config: { audio_format: 'pcm16k16bit', ...settings },
          });
          const result = r.result || {};
          words = result.word_info || [];
          segments = toSegments(words);
          text = result.text;
        }
        $('file-text').textContent = text || '(no speech recognised)';
        showSegments();
        draw();
        $('file-wave').dataset.transcribed = 'yes';
        status(`${segments.length} segment${segments.length === 1 ? '' : 's'}, ${words.length} words`);
      } catch (err) {
        showError('file-error', err);
        status('Failed');
      } finally {
        $('file-go').disabled = false;
      }
    });

    $('file-audio').addEventListener('play', () => requestAnimationFrame(tickPlayhead));
    window.addEventListener('resize', () => draw());
    return { draw };
  })();

  // ---- speech synthesis ----

  (() => {
    let url = null;
    for (const k of ['speed', 'pitch', 'volume']) {
      $(`tts-${k}`).addEventListener('input', () => {
        $(`tts-${k}-out`).textContent = $(`tts-${k}`).value;
      });
    }

    async function loadVoices() {
      const sel = $('tts-voice');
      if (sel.options.length) return;
      let voices = [];
      try {
        voices = (await (await fetch('/console/voices.json')).json()).voices;
      } catch (_) {
        voices = [{ property: 'chinese_xiaoyan_common', gender: 'female' }];
      }
      for (const v of voices) {
        const label = `${v.property} (${v.gender}${v.premium ? ', premium' : ''}${v.only_16k ? ', 16 kHz' : ''})`;
        sel.add(new Option(label, v.property, false, v.property === 'chinese_xiaoyan_common'));
      }
    }
    loadVoices();

    $('tts-go').addEventListener('click', async () => {
      showError('tts-error', null);
      $('tts-go').disabled = true;
      $('tts-status').textContent = 'Synthesizing…';
      const format = $('tts-format').value;
      try {
        const r = await api('POST', 'tts', {
          text: $('tts-text').value,
          config: {
            audio_format: format,
            sample_rate: $('tts-rate').value,
            property: $('tts-voice').value,
            speed: Number($('tts-speed').value),
            pitch: Number($('tts-pitch').value),
            volume: Number($('tts-volume').value),
          },
        });
        const bin = atob(r.result.data);
        const bytes = new Uint8Array(bin.length);
        for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
        if (url) URL.revokeObjectURL(url);
        url = URL.createObjectURL(new Blob([bytes], { type: format === 'mp3' ? 'audio/mpeg' : 'audio/wav' }));
        const audio = $('tts-audio');
        audio.src = url;
        const dl = $('tts-download');
        dl.href = url;
        dl.download = `tts.${format}`;
        dl.hidden = false;
        $('tts-status').textContent = `${(bytes.length / 1024).toFixed(1)} KiB`;
        audio.addEventListener(
          'loadedmetadata',
          () => {
            $('tts-status').textContent = `${audio.duration.toFixed(2)} s, ${(bytes.length / 1024).toFixed(1)} KiB`;
          },
          { once: true },
        );
        audio.play().catch(() => {});
      } catch (err) {
        showError('tts-error', err);
        $('tts-status').textContent = '';
      } finally {
        $('tts-go').disabled = false;
      }
    });
  })();

  // ---- vocabularies ----

  const Vocab = (() => {
    const LIMIT = 10;
    let offset = 0;
    let selected = null; // vocabulary_id being edited
    let confirmTimer = null;

    function edit(v) {
      selected = v ? v.vocabulary_id : null;
      $('vocab-editor-title').textContent = v ? `Edit ${v.name}` : 'New vocabulary';
      $('vocab-name').value = v ? v.name : '';
      $('vocab-description').value = v ? v.description || '' : '';
      $('vocab-language').value = v ? v.language : 'chinese_mandarin';
      $('vocab-contents').value = v ? (v.contents || []).join('\n') : '';
      $('vocab-save').textContent = v ? 'Save' : 'Create';
      $('vocab-delete').hidden = !v;
      resetDelete();
      $('vocab-status').textContent = '';
      showError('vocab-error', null);
      for (const tr of document.querySelectorAll('#vocab-list tbody tr')) {
        tr.classList.toggle('selected', !!selected && tr.dataset.id === selected);
      }
    }

    function resetDelete() {
      clearTimeout(confirmTimer);
      $('vocab-delete').classList.remove('confirm');
      $('vocab-delete').textContent = 'Delete';
    }

    async function load(at) {
      showError('vocab-error', null);
      try {
        const r = await api('GET', `asr/vocabularies?offset=${at}&limit=${LIMIT}`);
        offset = at;
        const body = $('vocab-list').querySelector('tbody');
        body.textContent = '';
        for (const v of r.result || []) {
          const tr = document.createElement('tr');
          tr.dataset.id = v.vocabulary_id;
          tr.dataset.name = v.name;
          for (const [cls, text] of [['', v.name], ['', v.language], ['', v.description || ''], ['id', v.vocabulary_id]]) {
            const td = document.createElement('td');
            if (cls) td.className = cls;
            td.textContent = text;
            tr.append(td);
          }
          tr.classList.toggle('selected', tr.dataset.id === selected);
          tr.addEventListener('click', () => show(v.vocabulary_id));
          body.append(tr);
        }
        if (!body.children.length) {
          const tr = document.createElement('tr');
          const td = document.createElement('td');
          td.colSpan = 4;
          td.className = 'empty';
          td.textContent = 'No vocabularies yet.';
          tr.append(td);
          body.append(tr);
        }
        const count = r.count || 0;
        $('vocab-count').textContent = `${count} in this project`;
        const pages = Math.max(1, Math.ceil(count / LIMIT));
        $('vocab-page').textContent = `Page ${Math.floor(offset / LIMIT) + 1} of ${pages}`;
        $('vocab-prev').disabled = offset === 0;
        $('vocab-next').disabled = offset + LIMIT >= count;
      } catch (err) {
        showError('vocab-error', err);
      }
    }

    async function show(id) {
      try {
        edit(await api('GET', `asr/vocabularies/${encodeURIComponent(id)}`));
      } catch (err) {
        showError('vocab-error', err);
      }
    }

    $('vocab-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      showError('vocab-error', null);
      const body = {
        name: $('vocab-name').value.trim(),
        description: $('vocab-description').value,
        language: $('vocab-language').value,
        contents: $('vocab-contents')
          .value.split('\n')
          .map((w) => w.trim())
          .filter((w) => w),
      };
      try {
        if (selected) {
          await api('PUT', `asr/vocabularies/${encodeURIComponent(selected)}`, body);
          await show(selected);
          $('vocab-status').textContent = 'Saved';
        } else {
          const r = await api('POST', 'asr/vocabularies', body);
          await show(r.vocabulary_id);
          $('vocab-status').textContent = 'Created';
        }
        await load(offset);
      } catch (err) {
        showError('vocab-error', err);
      }
    });

    $('vocab-delete').addEventListener('click', async () => {
      const btn = $('vocab-delete');
      if (!btn.classList.contains('confirm')) {
        btn.classList.add('confirm');
        btn.textContent = 'Click again to delete';
        confirmTimer = setTimeout(resetDelete, 4000);
        return;
      }
      resetDelete();
      try {
        await api('DELETE', `asr/vocabularies/${encodeURIComponent(selected)}`);
        edit(null);
        $('vocab-status').textContent = 'Deleted';
        await load(offset);
      } catch (err) {
        showError('vocab-error', err);
      }
    });

    $('vocab-new').addEventListener('click', () => edit(null));
    $('vocab-refresh').addEventListener('click', () => load(offset));
    $('vocab-prev').addEventListener('click', () => load(Math.max(0, offset - LIMIT)));
    $('vocab-next').addEventListener('click', () => load(offset + LIMIT));
    return { load };
  })();

  // ---- start ----

  fillProperties('live-property');
  fillProperties('file-property');
  FileView.draw();
  route();
})();
