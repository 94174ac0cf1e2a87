// tsuitate web viewer: the viewer page. WebRTC video from the web viewer, keyboard and pointer
// events back on the 'input' data channel (docs/viewer.md, "The page's data channel").
// The page never touches the clipboard, stores nothing (the language choice lives on the
// login page) and offers no way to save the picture.
'use strict';
(function () {
  const csrf = document.querySelector('meta[name=csrf]').content;
  const lang = document.documentElement.lang === 'en' ? 'en' : 'ja';
  const video = document.getElementById('screen');
  const ime = document.getElementById('ime');
  const statusBox = document.getElementById('status');
  const statsBox = document.getElementById('stats');
  const MAX_TEXT = 64;

  let pc = null;
  let dc = null;
  let ended = false;
  let composing = false;

  // ---- status -------------------------------------------------------------------------
  function showStatus(text, end, warning) {
    statusBox.textContent = text;
    // A timeout warning ("idle" goes with the next input) or nothing.
    if (warning) statusBox.dataset.warning = warning; else delete statusBox.dataset.warning;
    statusBox.hidden = false;
    statusBox.classList.toggle('end', !!end);
    if (end) {
      const a = document.createElement('a');
      a.href = '/';
      a.id = 'back-to-login';
      a.textContent = lang === 'ja' ? 'ログイン画面へ' : 'Back to the login page';
      statusBox.appendChild(a);
    }
  }
  function hideStatus() { statusBox.hidden = true; }

  // ---- clock and latency ------------------------------------------------------------
  // The web viewer answers pings with the gateway clock; RTP timestamps are the capture time
  // on that clock at 90 kHz (mod 2^32), so the page can measure capture -> displayed.
  const pings = [];           // recent {rtt, offset} samples
  let pingId = 0;
  function pageNowMs() { return performance.timeOrigin + performance.now(); }
  function gatewayOffsetMs() {
    if (pings.length === 0) return null;
    let best = pings[0];
    for (const p of pings) if (p.rtt < best.rtt) best = p;
    return best.offset;
  }
  function bestRttMs() {
    if (pings.length === 0) return null;
    return Math.min.apply(null, pings.map(p => p.rtt));
  }
  const lat = { window: [], all: [], received: [], decoded: [], frames: 0 };
  function percentile(sorted, p) {
    if (sorted.length === 0) return 0;
    const i = Math.min(sorted.length - 1, Math.floor(p * sorted.length));
    return sorted[i];
  }
  // Age of a frame (ms) at page time t (a performance.now() value), from its RTP timestamp.
  function ageAt(t, rtp, off) {
    const gw = performance.timeOrigin + t + off;                      // ms, gateway clock
    const ticksNow = Math.floor(gw * 90) % 4294967296;
    return (((ticksNow - rtp) % 4294967296 + 4294967296) % 4294967296) / 90;
  }
  function onVideoFrame(now, meta) {
    lat.frames++;
    const off = gatewayOffsetMs();
    if (off !== null && typeof meta.rtpTimestamp === 'number') {
      const shown = (meta.expectedDisplayTime !== undefined ? meta.expectedDisplayTime : now);
      const ms = ageAt(shown, meta.rtpTimestamp, off);
      if (ms >= 0 && ms < 60000) {
        lat.window.push(ms);
        lat.all.push(ms);
        if (lat.all.length > 5000) lat.all.shift();
      }
      // When the last packet arrived (Chromium reports it for WebRTC frames): splits the
      // latency into network/web viewer and the browser's own playout.
      if (typeof meta.receiveTime === 'number') {
        const r = ageAt(meta.receiveTime, meta.rtpTimestamp, off);
        if (r >= 0 && r < 60000) {
          lat.received.push(r);
          if (lat.received.length > 5000) lat.received.shift();
        }
        // Decoded: the point the native viewer measures to (its frame is in its buffer).
        if (typeof meta.processingDuration === 'number') {
          const d = ageAt(meta.receiveTime + meta.processingDuration * 1000, meta.rtpTimestamp, off);
          if (d >= 0 && d < 60000) {
            lat.decoded.push(d);
            if (lat.decoded.length > 5000) lat.decoded.shift();
          }
        }
      }
    }
    video.requestVideoFrameCallback(onVideoFrame);
  }
  if ('requestVideoFrameCallback' in HTMLVideoElement.prototype) {
    video.requestVideoFrameCallback(onVideoFrame);
  }

  // ---- sending --------------------------------------------------------------------------
  function send(obj) {
    if (dc && dc.readyState === 'open') dc.send(JSON.stringify(obj));
    // Input resets the idle timeout: its warning goes.
    const input = obj.t !== 'latency' && obj.t !== 'ping' && obj.t !== 'resize';
    if (input && statusBox.dataset.warning === 'idle') {
      delete statusBox.dataset.warning;
      hideStatus();
    }
  }
  function mods(e) {
    return (e.shiftKey ? 1 : 0) | (e.ctrlKey ? 2 : 0) | (e.altKey ? 4 : 0) | (e.metaKey ? 8 : 0);
  }
  function sendText(text) {
    // Committed text without control characters, in pieces the protocol accepts.
    const clean = Array.from(text).filter(c => c >= ' ' && c !== '\u007f');
    for (let i = 0; i < clean.length; i += MAX_TEXT) {
      send({ t: 'text', text: clean.slice(i, i + MAX_TEXT).join('') });
    }
  }

  // ---- keyboard and IME -----------------------------------------------------------------
  // Keys go to a hidden, focused text field. While an IME composes (MS-IME, Google 日本語入力)
  // keys are left to it and nothing is sent; the committed text is sent at compositionend.
  const KNOWN_CODES = new Set(@KEY_CODES@);
  function keyEvent(e, down) {
    if (ended) return;
    if (e.isComposing || composing || e.keyCode === 229) return;
    if (e.key === 'F11' && down) { e.preventDefault(); toggleFullscreen(); return; }
    e.preventDefault();
    const code = KNOWN_CODES.has(e.code) ? e.code : 'Unidentified';
    send({ t: 'key', down: down, code: code, key: (e.key || '').slice(0, 32), mods: mods(e) });
  }
  ime.addEventListener('keydown', e => keyEvent(e, true));
  ime.addEventListener('keyup', e => keyEvent(e, false));
  ime.addEventListener('compositionstart', () => { composing = true; });
  ime.addEventListener('compositionend', e => {
    composing = false;
    if (e.data) sendText(e.data);
    ime.value = '';
  });
  ime.addEventListener('input', e => {
    // Text inserted without keys (an IME's direct commit, a test's insertText).
    if (!composing && !e.isComposing && e.inputType === 'insertText' && e.data) sendText(e.data);
    if (!composing) ime.value = '';
  });
  ime.addEventListener('paste', e => e.preventDefault());
  ime.addEventListener('drop', e => e.preventDefault());
  function focusInput() { if (!ended) ime.focus({ preventScroll: true }); }

  // ---- pointer --------------------------------------------------------------------------
  function remotePoint(e) {
    const w = video.videoWidth, h = video.videoHeight;
    if (!w || !h) return null;
    const r = video.getBoundingClientRect();
    const scale = Math.min(r.width / w, r.height / h);
    const left = r.left + (r.width - w * scale) / 2;
    const top = r.top + (r.height - h * scale) / 2;
    const x = Math.floor((e.clientX - left) / scale);
    const y = Math.floor((e.clientY - top) / scale);
    if (x < 0 || y < 0 || x >= w || y >= h) return null;
    return { x: x, y: y };
  }
  function placeIme(p) {
    // Keep the IME's candidate window near where the user points.
    const r = video.getBoundingClientRect();
    const w = video.videoWidth, h = video.videoHeight;
    const scale = Math.min(r.width / w, r.height / h);
    ime.style.left = Math.round((r.width - w * scale) / 2 + p.x * scale) + 'px';
    ime.style.top = Math.round((r.height - h * scale) / 2 + p.y * scale) + 'px';
  }
  let pendingMove = null;
  video.addEventListener('mousemove', e => {
    const p = remotePoint(e);
    if (!p) return;
    if (pendingMove === null) requestAnimationFrame(() => { send(Object.assign({ t: 'move' }, pendingMove)); pendingMove = null; });
    pendingMove = p;
  });
  video.addEventListener('mousedown', e => {
    e.preventDefault();
    const p = remotePoint(e);
    if (!p || e.button > 2) return;
    send({ t: 'move', x: p.x, y: p.y });
    send({ t: 'button', down: true, button: e.button });
    placeIme(p);
    focusInput();
  });
  video.addEventListener('mouseup', e => {
    e.preventDefault();
    if (e.button > 2) return;
    send({ t: 'button', down: false, button: e.button });
    focusInput();
  });
  video.addEventListener('wheel', e => {
    e.preventDefault();
    const notches = v => v === 0 ? 0 : Math.sign(v) * Math.max(1, Math.min(10, Math.round(Math.abs(v) / 100)));
    const dx = notches(e.deltaX), dy = notches(e.deltaY);
    if (dx || dy) send({ t: 'wheel', dx: dx, dy: dy });
  }, { passive: false });
  video.addEventListener('contextmenu', e => e.preventDefault());
  document.addEventListener('contextmenu', e => e.preventDefault());
  video.addEventListener('click', focusInput);

  // ---- size -----------------------------------------------------------------------------
  // The remote browser gets the stage's size in device pixels: one remote pixel per screen
  // pixel, sharp on HiDPI screens.
  let resizeTimer = null;
  function stageSize() {
    const r = document.getElementById('stage').getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const even = v => Math.max(64, Math.min(3840, Math.floor(v * dpr / 2) * 2));
    return { w: even(r.width), h: Math.min(2160, even(r.height)) };
  }
  function sendSize() { const s = stageSize(); send({ t: 'resize', w: s.w, h: s.h }); }
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(sendSize, 300);
  });

  // ---- fullscreen with keyboard lock (Ctrl+W, Ctrl+T, Ctrl+N reach the remote browser) ----
  let keyboardLocked = false;
  function toggleFullscreen() {
    if (document.fullscreenElement) { document.exitFullscreen(); return; }
    document.documentElement.requestFullscreen().then(() => {
      if (navigator.keyboard && navigator.keyboard.lock) {
        navigator.keyboard.lock().then(() => { keyboardLocked = true; }).catch(() => {});
      }
      focusInput();
    }).catch(() => {});
  }
  const fullscreenButton = document.getElementById('fullscreen');
  const fullscreenLabel = fullscreenButton.textContent;
  fullscreenButton.addEventListener('click', toggleFullscreen);
  document.addEventListener('fullscreenchange', () => {
    fullscreenButton.textContent = document.fullscreenElement
      ? (lang === 'ja' ? '全画面を終了 (F11)' : 'Exit full screen (F11)') : fullscreenLabel;
    if (!document.fullscreenElement && navigator.keyboard && navigator.keyboard.unlock) {
      navigator.keyboard.unlock();
      keyboardLocked = false;
    }
  });

  // ---- statistics overlay ---------------------------------------------------------------
  let lastBytes = 0, lastStatsAt = 0, bitrate = 0, dropped = 0, fps = 0, mediaPort = null;
  async function pollStats() {
    if (!pc) return;
    const report = await pc.getStats();
    report.forEach(s => {
      // The web viewer's UDP port this connection uses (one port for every browser).
      if (s.type === 'transport' && s.selectedCandidatePairId) {
        const pair = report.get(s.selectedCandidatePairId);
        const remote = pair && report.get(pair.remoteCandidateId);
        if (remote) mediaPort = remote.port;
      }
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        const now = s.timestamp;
        if (lastStatsAt) bitrate = (s.bytesReceived - lastBytes) * 8 / ((now - lastStatsAt) / 1000);
        lastBytes = s.bytesReceived; lastStatsAt = now;
        dropped = s.framesDropped || 0;
        fps = s.framesPerSecond || 0;
      }
    });
  }
  function snapshot() {
    const sorted = lat.all.slice().sort((a, b) => a - b);
    const rx = lat.received.slice().sort((a, b) => a - b);
    const dec = lat.decoded.slice().sort((a, b) => a - b);
    return {
      frames: lat.frames,
      latency_ms: { p50: percentile(sorted, 0.5), p95: percentile(sorted, 0.95), p99: percentile(sorted, 0.99), samples: sorted.length },
      received_ms: { p50: percentile(rx, 0.5), p95: percentile(rx, 0.95), samples: rx.length },
      decoded_ms: { p50: percentile(dec, 0.5), p95: percentile(dec, 0.95), p99: percentile(dec, 0.99), samples: dec.length },
      fps: fps, bitrate_bps: Math.round(bitrate), dropped: dropped, rtt_ms: bestRttMs(),
      connection: pc ? pc.connectionState : 'none', media_port: mediaPort,
      fullscreen: !!document.fullscreenElement, keyboard_locked: keyboardLocked,
      width: video.videoWidth, height: video.videoHeight,
    };
  }
  function renderStats() {
    const s = snapshot();
    const f = v => v === null ? '-' : v.toFixed(1);
    statsBox.textContent =
      (lang === 'ja' ? '遅延 (撮影→表示)' : 'latency (capture→shown)') +
      ` p50 ${f(s.latency_ms.p50)} / p95 ${f(s.latency_ms.p95)} / p99 ${f(s.latency_ms.p99)} ms\n` +
      `fps ${f(s.fps)}  ${(s.bitrate_bps / 1000).toFixed(0)} kbit/s  ` +
      (lang === 'ja' ? '破棄' : 'dropped') + ` ${s.dropped}  RTT ${f(s.rtt_ms)} ms\n` +
      `${s.width}×${s.height}  ${s.connection}`;
  }
  document.getElementById('stats-toggle').addEventListener('click', () => {
    statsBox.hidden = !statsBox.hidden;
    renderStats();
    focusInput();
  });
  // For monitoring and benchmarks: numbers only, no content. resetStats starts a new
  // measurement window.
  window.tsuitate = {
    stats: snapshot,
    resetStats: () => { lat.all = []; lat.window = []; lat.received = []; lat.decoded = []; lat.frames = 0; },
  };

  setInterval(() => {
    pingId++;
    send({ t: 'ping', id: pingId, page_ms: pageNowMs() });
    const w = lat.window.sort((a, b) => a - b);
    if (w.length > 0) {
      send({ t: 'latency', frames: w.length, p50_us: Math.round(percentile(w, 0.5) * 1000), p95_us: Math.round(percentile(w, 0.95) * 1000) });
    }
    lat.window = [];
    pollStats().then(() => { if (!statsBox.hidden) renderStats(); });
  }, 2000);

  // ---- messages from the web viewer ----------------------------------------------------
  function onMessage(ev) {
    let m;
    try { m = JSON.parse(ev.data); } catch (e) { return; }
    if (m.t === 'pong' && typeof m.page_ms === 'number') {
      const now = pageNowMs();
      const rtt = now - m.page_ms;
      if (rtt >= 0) {
        pings.push({ rtt: rtt, offset: m.gw_us / 1000 - (m.page_ms + rtt / 2) });
        if (pings.length > 8) pings.shift();
      }
    } else if (m.t === 'status' && m.clear) {
      // The gateway connection is back (a lost gateway was replaced): the picture goes on.
      if (!ended) hideStatus();
    } else if (m.t === 'status') {
      showStatus(lang === 'ja' ? m.ja : m.en, m.end, m.name === 'timeout_warning' ? m.kind : null);
      if (m.end) finish();
    }
  }

  // The connection dropped (network, or this session was taken over by another connection
  // of the same page): ask the web viewer whether the session still runs.
  async function checkState(lost) {
    if (ended || lost !== pc) return;
    let st = null;
    try {
      const r = await fetch('/state', { credentials: 'same-origin', cache: 'no-store' });
      st = await r.json();
    } catch (e) { st = null; }
    if (ended || lost !== pc) return;
    if (st && st.live) {
      if (lost.connectionState === 'connected') return;
      lost.close();
      connect().catch(() => setTimeout(() => checkState(pc), 2000));
    } else if (st && st.name) {
      showStatus(lang === 'ja' ? st.ja : st.en, true);
      finish();
    } else if (st) {
      location.href = '/';
    } else {
      setTimeout(() => checkState(lost), 2000);
    }
  }

  function finish() {
    ended = true;
    if (pc) pc.close();
    video.srcObject = null;
  }

  // ---- connection -----------------------------------------------------------------------
  async function connect() {
    showStatus(statusBox.dataset.connecting);
    pc = new RTCPeerConnection({ iceServers: [] });
    pc.addTransceiver('video', { direction: 'recvonly' });
    dc = pc.createDataChannel('input', { ordered: true });
    dc.onopen = () => {
      sendSize();
      send({ t: 'ping', id: ++pingId, page_ms: pageNowMs() });
      focusInput();
    };
    dc.onmessage = onMessage;
    pc.ontrack = e => {
      // A remote screen wants the newest picture now, not a smooth playout: no jitter buffer
      // beyond what the network needs.
      try { e.receiver.jitterBufferTarget = 0; } catch (err) { /* older browsers */ }
      try { e.receiver.playoutDelayHint = 0; } catch (err) { /* not in every browser */ }
      video.srcObject = new MediaStream([e.track]);
      showStatus(statusBox.dataset.waiting);
    };
    const mine = pc;
    pc.onconnectionstatechange = () => {
      if (ended || mine !== pc) return;
      const s = pc.connectionState;
      if (s === 'failed' || s === 'disconnected' || s === 'closed') {
        showStatus(statusBox.dataset.reconnecting);
        setTimeout(() => checkState(mine), 1000);
      }
    };
    await pc.setLocalDescription(await pc.createOffer());
    const r = await fetch('/offer', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
      body: JSON.stringify(pc.localDescription),
      credentials: 'same-origin',
      cache: 'no-store',
    });
    if (!r.ok) {
      const text = await r.text();
      const lines = text.split('\n');
      showStatus(lang === 'ja' ? lines[0] : (lines[1] || lines[0]), true);
      finish();
      return;
    }
    await pc.setRemoteDescription(await r.json());
  }
  video.addEventListener('playing', () => { if (!ended) hideStatus(); focusInput(); });
  connect().catch(err => {
    showStatus((lang === 'ja' ? '接続できませんでした: ' : 'Could not connect: ') + err, true);
    finish();
  });
})();
