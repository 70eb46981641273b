// chatapi's page: the video library, a video's player beside its transcript, keyframes and a
// chat, and search across the library. Plain DOM, no build step; every request goes to this
// server, with the key (if one is asked for) in `Authorization`, never in a URL: what the browser
// fetches by itself (<video>, <img>) uses the signed links the API hands out.
"use strict";

const KEY = "chatapi.key";
const STEPS = ["transcript", "keyframes", "ocr", "captions", "embeddings"];
const main = document.getElementById("main");
const statusLine = document.getElementById("status");
let leaving = []; // what the current view must stop (timers, requests) when the view changes

// ---- small helpers -------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

function stamp(seconds) {
  const total = Math.max(0, Math.floor(seconds || 0));
  const h = Math.floor(total / 3600), m = Math.floor(total / 60) % 60, s = total % 60;
  const two = (n) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${two(m)}:${two(s)}` : `${two(m)}:${two(s)}`;
}

function say(text) {
  statusLine.textContent = text;
}

function every(ms, fn) {
  const id = setInterval(fn, ms);
  leaving.push(() => clearInterval(id));
}

// ---- the key and requests ------------------------------------------------------------------

function key() {
  return sessionStorage.getItem(KEY) || "";
}

function headers(extra) {
  const all = Object.assign({}, extra);
  if (key()) all.Authorization = "Bearer " + key();
  return all;
}

let asking = null;
function askKey(problem) {
  if (asking) return asking;
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  document.getElementById("key-error").textContent = problem || "";
  input.value = "";
  asking = new Promise((resolve) => {
    dialog.addEventListener("close", function done() {
      dialog.removeEventListener("close", done);
      asking = null;
      if (dialog.returnValue === "save" && input.value.trim()) {
        sessionStorage.setItem(KEY, input.value.trim());
        resolve(true);
      } else resolve(false);
    });
  });
  dialog.showModal();
  input.focus();
  return asking;
}

function problemOf(body, response) {
  if (body && body.error && body.error.message) return body.error.message;
  if (body && body.msg) return body.msg;
  return `${response.status} ${response.statusText}`;
}

// A JSON request; a refused key asks for one and tries again.
async function call(method, path, body) {
  for (let attempt = 0; ; attempt++) {
    const init = { method, headers: headers(body ? { "Content-Type": "application/json" } : {}) };
    if (body) init.body = JSON.stringify(body);
    const response = await fetch(path, init);
    const text = await response.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
    if (response.status === 401 && attempt < 3) {
      if (await askKey(key() ? "That key was refused." : "")) continue;
    }
    if (!response.ok) throw new Error(problemOf(json, response));
    return json;
  }
}

// ---- routing -------------------------------------------------------------------------------

function route() {
  say("");
  for (const stop of leaving) stop();
  leaving = [];
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query || "");
  const parts = (path || "/").split("/").filter(Boolean);
  const section = parts[0] || "library";
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  main.replaceChildren();
  let view;
  if (parts[0] === "v" && parts[1]) view = watch(decodeURIComponent(parts[1]), Number(params.get("t")) || 0);
  else if (parts[0] === "search") view = search(params.get("q") || "", params.get("mode") || "hybrid");
  else view = library();
  view.catch((e) => show(el("p", { class: "error", role: "alert" }, e.message)));
  main.focus({ preventScroll: true });
}

function show(...nodes) {
  main.append(...nodes);
}

// ---- the library ---------------------------------------------------------------------------

function badge(status) {
  return el("span", { class: `badge ${status}` }, status);
}

function stepsOf(video) {
  const done = STEPS.filter((s) => video.steps && video.steps[s]);
  return el("ul", { class: "steps", "aria-label": "Processing steps" },
    STEPS.map((s) => el("li", { class: done.includes(s) ? "done" : "" }, s)));
}

function card(video, onDelete) {
  const steps = STEPS.filter((s) => video.steps && video.steps[s]).length;
  const busy = video.status === "queued" || video.status === "processing";
  const title = video.name || video.id;
  return el("li", { class: "video", "data-id": video.id },
    video.thumbnail_url
      ? el("img", { class: "thumb", src: video.thumbnail_url, alt: `First keyframe of ${title}` })
      : el("div", { class: "thumb", role: "img", "aria-label": "No keyframe yet" }),
    el("div", { class: "body" },
      el("a", { class: "name", href: `#/v/${encodeURIComponent(video.id)}` }, title),
      el("div", { class: "row" }, badge(video.status),
        video.duration_s ? el("span", { class: "muted" }, stamp(video.duration_s)) : null),
      busy ? el("progress", { max: STEPS.length, value: steps, "aria-label": `Processing ${title}` }) : null,
      busy ? stepsOf(video) : null,
      video.status === "failed" && video.error ? el("p", { class: "error" }, video.error) : null,
      el("div", { class: "row" },
        el("button", { type: "button", class: "quiet", "aria-label": `Delete ${title}`,
          onclick: () => onDelete(video) }, "Delete")),
    ));
}

async function confirmDelete(video) {
  const dialog = document.getElementById("confirm-dialog");
  document.getElementById("confirm-text").textContent =
    `“${video.name || video.id}” and everything made from it (transcript, keyframes, chats) will be removed.`;
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", function done() {
      dialog.removeEventListener("close", done);
      resolve(dialog.returnValue === "yes");
    });
  });
}

function upload(file, uploads, refresh) {
  const bar = el("progress", { max: 100, value: 0, "aria-label": `Uploading ${file.name}` });
  const line = el("li", {}, el("span", {}, file.name, " "), bar);
  uploads.append(line);
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("name", file.name);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/v1/videos");
  for (const [name, value] of Object.entries(headers())) xhr.setRequestHeader(name, value);
  xhr.upload.addEventListener("progress", (e) => {
    if (e.lengthComputable) bar.value = Math.round((e.loaded / e.total) * 100);
  });
  xhr.addEventListener("load", () => {
    let body = null;
    try { body = JSON.parse(xhr.responseText); } catch (_) { body = null; }
    if (xhr.status === 401) {
      line.remove();
      askKey("That key was refused.").then((again) => again && upload(file, uploads, refresh));
      return;
    }
    if (xhr.status >= 300) {
      line.replaceChildren(el("span", { class: "error", role: "alert" },
        `${file.name}: ${problemOf(body, { status: xhr.status, statusText: xhr.statusText })}`));
      return;
    }
    line.remove();
    say(`Uploaded ${file.name}; processing.`);
    refresh();
  });
  xhr.addEventListener("error", () => {
    line.replaceChildren(el("span", { class: "error", role: "alert" }, `${file.name}: the upload was cut off.`));
  });
  xhr.send(form);
}

async function library() {
  const list = el("ul", { class: "videos", "aria-label": "Videos" });
  const uploads = el("ul", { class: "uploads", "aria-label": "Uploads" });
  const picker = el("input", { type: "file", accept: "video/*,audio/*", multiple: true, hidden: true, id: "file-input" });
  const refresh = async () => {
    const page = await call("GET", "/v1/videos?limit=100");
    const focused = document.activeElement && document.activeElement.closest("[data-id]");
    const keep = focused && focused.dataset.id;
    list.replaceChildren(...page.data.map((v) => card(v, remove)));
    if (!page.data.length) list.append(el("li", { class: "muted" }, "No videos yet: add one above."));
    if (keep) {
      const again = list.querySelector(`[data-id="${CSS.escape(keep)}"] a`);
      if (again) again.focus();
    }
    return page.data.some((v) => v.status === "queued" || v.status === "processing");
  };
  const remove = async (video) => {
    if (!(await confirmDelete(video))) return;
    try {
      await call("DELETE", `/v1/videos/${encodeURIComponent(video.id)}`);
      say(`Deleted ${video.name || video.id}.`);
      await refresh();
    } catch (e) { say(e.message); }
  };
  picker.addEventListener("change", () => {
    for (const file of picker.files) upload(file, uploads, refresh);
    picker.value = "";
  });
  const drop = el("div", { class: "drop", id: "drop" },
    el("p", {}, "Drop a video here, or ",
      el("button", { type: "button", id: "choose-file", onclick: () => picker.click() }, "choose a file")),
    picker);
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    for (const file of e.dataTransfer.files) upload(file, uploads, refresh);
  });
  const urlInput = el("input", { type: "url", id: "url-input", name: "url", placeholder: "https://…/talk.mp4", required: true, class: "grow" });
  const byUrl = el("form", { class: "row", id: "url-form", onsubmit: async (e) => {
    e.preventDefault();
    try {
      const video = await call("POST", "/v1/videos", { url: urlInput.value });
      urlInput.value = "";
      say(`Added ${video.name || video.id}; downloading and processing.`);
      await refresh();
    } catch (err) { say(err.message); }
  } }, el("label", { for: "url-input", class: "visually-hidden" }, "Video URL"), urlInput,
    el("button", { type: "submit" }, "Add by URL"));
  show(el("h1", {}, "Library"), drop, byUrl, uploads, list);
  let busy = await refresh();
  every(1500, async () => {
    if (busy || uploads.children.length) busy = await refresh().catch(() => busy);
  });
}

// ---- one video -----------------------------------------------------------------------------

function cuesOf(timeline) {
  const cues = [];
  for (const segment of timeline.segments) {
    const list = segment.cues && segment.cues.length ? segment.cues
      : [{ start_s: segment.start_s, end_s: segment.end_s, text: segment.on_screen_text || segment.caption || "" }];
    for (const cue of list) if (cue.text) cues.push(cue);
  }
  return cues;
}

async function watch(id, at) {
  let video = await call("GET", `/v1/videos/${encodeURIComponent(id)}`);
  const player = el("video", { controls: true, preload: "metadata", src: video.media_url, id: "player",
    "aria-label": `Player: ${video.name || video.id}` });
  const cannot = el("p", { class: "error", role: "alert", id: "cannot-play", hidden: true },
    "This browser cannot play this file's format; the transcript, keyframes and chat still work.");
  player.addEventListener("error", () => { cannot.hidden = false; });
  const seek = (seconds) => {
    player.currentTime = seconds;
    player.play().catch(() => {});
  };
  if (at > 0) {
    const start = () => { player.currentTime = at; };
    if (player.readyState >= 1) start(); else player.addEventListener("loadedmetadata", start, { once: true });
  }
  const aside = el("section", { "aria-label": "Transcript and chat" });
  const left = el("section", { "aria-label": "Player" }, player, cannot);
  show(el("h1", {}, video.name || video.id), el("div", { class: "watch" }, left, aside));
  if (video.status !== "ready") {
    const note = el("p", { class: "muted" }, badge(video.status), " The transcript, keyframes and chat appear once processing ends.");
    const steps = stepsOf(video);
    aside.append(note, steps);
    await new Promise((resolve) => every(1500, async () => {
      video = await call("GET", `/v1/videos/${encodeURIComponent(id)}`).catch(() => video);
      steps.replaceWith(stepsOf(video));
      if (video.status === "ready") resolve();
      if (video.status === "failed") note.replaceChildren(badge("failed"), " ", video.error || "");
    }));
    aside.replaceChildren();
  }
  const timeline = await call("GET", `/v1/videos/${encodeURIComponent(id)}/timeline`);
  const strip = el("ul", { class: "strip", "aria-label": "Scenes" }, timeline.keyframes.map((k) =>
    el("li", {}, el("button", { type: "button", "data-t": k.time_s, onclick: () => seek(k.time_s),
      "aria-label": `Scene at ${stamp(k.time_s)}${k.ocr_text ? ": " + k.ocr_text : ""}` },
    el("img", { src: k.url, alt: "" }), el("span", {}, stamp(k.time_s))))));
  left.append(el("h2", {}, "Scenes"), strip);
  const cues = cuesOf(timeline);
  const lines = cues.map((cue) => el("li", {}, el("button", { type: "button", "data-t": cue.start_s,
    onclick: () => seek(cue.start_s) }, el("span", { class: "stamp" }, stamp(cue.start_s)), el("span", {}, cue.text))));
  const transcript = el("ul", { class: "transcript", id: "transcript", "aria-label": "Transcript" }, lines);
  if (!lines.length) transcript.append(el("li", { class: "muted" }, "Nothing was said or shown in words."));
  let current = -1;
  player.addEventListener("timeupdate", () => {
    const t = player.currentTime;
    const now = cues.findIndex((c) => t >= c.start_s && t < c.end_s);
    if (now === current) return;
    if (current >= 0) { lines[current].firstChild.classList.remove("current"); lines[current].firstChild.removeAttribute("aria-current"); }
    current = now;
    if (now >= 0) {
      const line = lines[now].firstChild;
      line.classList.add("current");
      line.setAttribute("aria-current", "true");
      if (!transcript.contains(document.activeElement)) line.scrollIntoView({ block: "nearest" });
    }
  });
  aside.append(el("h2", {}, "Transcript"), transcript);
  aside.append(await chat(video, seek));
}

// ---- chat ----------------------------------------------------------------------------------

// Renders an answer with every [MM:SS] a button that seeks the player (or opens the video the
// stamp belongs to when the chat is about several).
function withCitations(text, cite) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(/\[(?:(\d+):)?(\d{1,2}):(\d{2})\]/g)) {
    const seconds = Number(m[1] || 0) * 3600 + Number(m[2]) * 60 + Number(m[3]);
    out.push(text.slice(last, m.index));
    out.push(el("button", { type: "button", class: "cite", "data-t": seconds, onclick: () => cite(seconds) }, m[0]));
    last = m.index + m[0].length;
  }
  out.push(text.slice(last));
  return out;
}

async function chat(video, seek) {
  const others = (await call("GET", "/v1/videos?status=ready&limit=100")).data.filter((v) => v.id !== video.id);
  const history = JSON.parse(sessionStorage.getItem(`chatapi.chat.${video.id}`) || "{}");
  const state = { sessionId: history.sessionId || null, messages: history.messages || [], refs: history.refs || [] };
  const save = () => sessionStorage.setItem(`chatapi.chat.${video.id}`, JSON.stringify(state));
  const messages = el("ul", { class: "messages", id: "messages", "aria-label": "Conversation", "aria-live": "polite" });
  const cite = (seconds) => {
    // The video the stamp is in: this one when it has that moment, else another in the chat.
    const inRef = (ref) => (ref.refItems || []).some((r) => seconds >= r.startTime - 2 && seconds <= r.endTime + 2);
    const mine = state.refs.find((r) => r.video.video_no === video.id);
    const target = mine && inRef(mine) ? null : state.refs.find((r) => r.video.video_no !== video.id && inRef(r));
    if (target) location.hash = `#/v/${encodeURIComponent(target.video.video_no)}?t=${seconds}`;
    else seek(seconds);
  };
  const render = (m) => el("li", { class: m.role + (m.failed ? " failed" : "") },
    m.role === "assistant" ? withCitations(m.content, cite) : m.content);
  messages.append(...state.messages.map(render));
  const picks = others.map((v) => el("label", { class: "row" },
    el("input", { type: "checkbox", value: v.id, name: "with" }), v.name || v.id));
  const question = el("textarea", { id: "question", rows: 2, required: true, class: "grow" });
  const send = el("button", { type: "submit", id: "send" }, "Ask");
  const form = el("form", { class: "chat", id: "chat-form", onsubmit: async (e) => {
    e.preventDefault();
    const prompt = question.value.trim();
    if (!prompt) return;
    question.value = "";
    send.disabled = true;
    const ids = [video.id, ...picks.map((p) => p.firstChild).filter((c) => c.checked).map((c) => c.value)];
    state.messages.push({ role: "user", content: prompt });
    messages.append(render(state.messages.at(-1)));
    const answer = { role: "assistant", content: "" };
    const line = render(answer);
    messages.append(line);
    try {
      await ask(ids, prompt, state, (text) => {
        answer.content += text;
        line.replaceChildren(...withCitations(answer.content, cite));
        messages.scrollTop = messages.scrollHeight;
      });
    } catch (err) {
      answer.failed = true;
      answer.content = answer.content || err.message;
      line.replaceWith(render(answer));
    }
    state.messages.push(answer);
    save();
    send.disabled = false;
    question.focus();
  } },
  el("h2", {}, "Ask about this video"),
  messages,
  others.length ? el("fieldset", { class: "with" }, el("legend", {}, "Also ask about"), picks) : null,
  el("label", { for: "question" }, "Your question"),
  question,
  el("div", { class: "row" }, send));
  return form;
}

// One question through the streamed video chat; `onText` gets each piece as it is written.
async function ask(ids, prompt, state, onText) {
  const body = { video_nos: ids, prompt };
  if (state.sessionId) body.session_id = state.sessionId;
  let response;
  for (let attempt = 0; ; attempt++) {
    response = await fetch("/serve/api/v1/chat_stream", {
      method: "POST", headers: headers({ "Content-Type": "application/json" }), body: JSON.stringify(body),
    });
    if (response.status === 401 && attempt < 3 && await askKey("That key was refused.")) continue;
    break;
  }
  if (!response.ok) {
    let json = null;
    try { json = await response.json(); } catch (_) { json = null; }
    throw new Error(problemOf(json, response));
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = JSON.parse(line.slice(5));
        if (data === "Done") return;
        if (data.type === "ref") state.refs = data.ref || [];
        if (data.sessionId) state.sessionId = data.sessionId;
        if (data.type === "content") onText(data.content);
        else if (data.code && data.code !== "0000") throw new Error(data.msg || "The answer failed.");
      }
    }
  }
}

// ---- search --------------------------------------------------------------------------------

async function search(q, mode) {
  const input = el("input", { type: "search", id: "search-input", name: "q", value: q, required: true, class: "grow" });
  const modes = el("select", { id: "search-mode", name: "mode" },
    [["hybrid", "Meaning and words"], ["semantic", "Meaning"], ["text", "Exact words"]].map(([v, label]) =>
      el("option", { value: v, selected: v === mode }, label)));
  const results = el("ul", { class: "results", id: "results", "aria-label": "Results" });
  const form = el("form", { role: "search", onsubmit: (e) => {
    e.preventDefault();
    location.hash = `#/search?q=${encodeURIComponent(input.value)}&mode=${modes.value}`;
  } }, el("label", { for: "search-input" }, "Search every video"),
  el("div", { class: "row" }, input, el("label", { for: "search-mode", class: "visually-hidden" }, "Match by"), modes,
    el("button", { type: "submit" }, "Search")));
  show(el("h1", {}, "Search"), form, results);
  if (!q) { input.focus(); return; }
  const found = await call("POST", "/v1/search", { query: q, mode, limit: 20 });
  results.replaceChildren(...found.data.map((hit) => el("li", {}, el("a", {
    href: `#/v/${encodeURIComponent(hit.video_id)}?t=${Math.floor(hit.start_s)}` },
  hit.keyframe_url ? el("img", { src: hit.keyframe_url, alt: "" }) : null,
  el("span", {}, el("span", { class: "stamp" }, stamp(hit.start_s)), " ", el("strong", {}, hit.name), el("br"), hit.text)))));
  if (!found.data.length) results.append(el("li", { class: "muted" }, "Nothing matched."));
  say(`${found.data.length} result${found.data.length === 1 ? "" : "s"} for “${q}”.`);
}

// ---- start ---------------------------------------------------------------------------------

document.getElementById("key-button").addEventListener("click", () => askKey().then((saved) => saved && route()));
document.getElementById("key-forget").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  document.getElementById("key-dialog").close("forget");
});
window.addEventListener("hashchange", route);
route();
