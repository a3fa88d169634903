/* The window's one script (vanilla, no downloads): live boards and tabs on /, sign-up buttons on a station's
   page, the personal code's refresh on /me, the rotating QR on a kiosk. Every word comes from the page. */
(function () {
  "use strict";
  var page = document.body.getAttribute("data-page");
  // The boards: the API keeps each board 1 s and serves a stale one while it computes the next, so polling
  // every 400 ms (mostly 304s) shows a new visit within 2 s. A kiosk polls once a second.
  var POLL_MS = 400, KIOSK_POLL_MS = 1000;

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function labels() {
    var node = $("#labels");
    return node ? JSON.parse(node.textContent) : {};
  }
  // Poll `url` every `ms`, sending the last ETag; `onData(json)` only when something changed.
  function poll(urlOf, ms, onData) {
    var etag = null, lastUrl = null, busy = false;
    function tick() {
      if (busy || document.hidden) return;
      var url = urlOf();
      if (url !== lastUrl) { etag = null; lastUrl = url; }
      busy = true;
      var headers = etag ? { "If-None-Match": etag } : {};
      fetch(url, { headers: headers, credentials: "same-origin", cache: "no-cache" }).then(function (r) {
        if (r.status === 304 || !r.ok) return null;
        etag = r.headers.get("ETag");
        return r.json();
      }).then(function (json) { if (json) onData(json); })
        .catch(function () { /* offline for a moment: the next tick tries again */ })
        .then(function () { busy = false; });
    }
    tick();
    var timer = setInterval(tick, ms);
    return { now: tick, stop: function () { clearInterval(timer); } };
  }

  // -- home: tabs, live boards, carousel, filters --------------------------------------------------
  function starText(n) { var s = ""; for (var i = 0; i < n; i++) s += "★"; return s; }

  function boardRow(row, L) {
    var tr = el("tr");
    tr.setAttribute("data-code", row.code);
    tr.setAttribute("data-rank", row.rank);
    tr.setAttribute("data-points", row.points);
    tr.appendChild(el("td", "rank", row.rank));
    var name = el("td", "name");
    var a = el("a", null, row.name);
    a.href = "/stations/" + encodeURIComponent(row.code);
    name.appendChild(a);
    var stars = el("span", "stars", " " + starText(row.stars));
    stars.title = (L.stars || "{n}").replace("{n}", row.stars);
    name.appendChild(stars);
    if (row.featured) name.appendChild(el("span", "badge", L.featured));
    name.appendChild(el("small", null, (row.district || "") + " · " + ((L.types || {})[row.type] || row.type || "")));
    tr.appendChild(name);
    tr.appendChild(el("td", "pts", row.points));
    return tr;
  }

  function renderBoard(table, json, L) {
    var tbody = table.tBodies[0];
    var before = {};
    $$("tr[data-code]", tbody).forEach(function (tr) { before[tr.getAttribute("data-code")] = tr.getAttribute("data-points"); });
    var frag = document.createDocumentFragment();
    (json.rows || []).forEach(function (row) {
      var tr = boardRow(row, L);
      if (before[row.code] !== undefined && before[row.code] !== String(row.points)) tr.className = "moved";
      frag.appendChild(tr);
    });
    if (!(json.rows || []).length) {
      var empty = el("tr"); var td = el("td", "muted", L.empty); td.colSpan = 3; empty.appendChild(td); frag.appendChild(empty);
    }
    tbody.innerHTML = "";
    tbody.appendChild(frag);
    var stamp = $("[data-updated]");
    if (stamp) stamp.textContent = (L.updated || "") + new Date().toLocaleTimeString();
  }

  function home() {
    var L = labels();
    var current = (document.querySelector(".tabs button.on") || {}).getAttribute
      ? $(".tabs button.on").getAttribute("data-tab") : "month";
    var district = $("select[name=district]"), type = $("select[name=type]");
    var limit = document.body.getAttribute("data-limit") || "50";
    function show(tab) {
      current = tab;
      $$("[data-tab]").forEach(function (b) { b.classList.toggle("on", b.getAttribute("data-tab") === tab); b.setAttribute("aria-selected", b.getAttribute("data-tab") === tab); });
      $$("table[data-board]").forEach(function (t) { t.hidden = t.getAttribute("data-board") !== tab; });
      var tabInput = $("input[name=tab]");
      if (tabInput) tabInput.value = tab;
    }
    var live = poll(function () {
      var q = "?limit=" + encodeURIComponent(limit);
      if (district && district.value) q += "&district=" + encodeURIComponent(district.value);
      if (type && type.value) q += "&type=" + encodeURIComponent(type.value);
      return "/api/v1/boards/" + current + q;
    }, POLL_MS, function (json) {
      var table = $('table[data-board="' + current + '"]');
      if (table) renderBoard(table, json, L);
    });
    $$("[data-tab]").forEach(function (b) {
      b.addEventListener("click", function () { show(b.getAttribute("data-tab")); live.now(); });
    });
    [district, type].forEach(function (s) {
      if (s) s.addEventListener("change", function () { s.form.submit(); });
    });
    carousel();
  }

  function carousel() {
    var box = $("#featured .slides");
    if (!box) return;
    var slides = $$(".slide", box), dots = $$("#featured .dots span");
    if (slides.length < 2) return;
    var i = 0;
    function mark() {
      i = Math.round(box.scrollLeft / Math.max(1, box.clientWidth));
      dots.forEach(function (d, k) { d.classList.toggle("on", k === i); });
    }
    box.addEventListener("scroll", mark, { passive: true });
    setInterval(function () {
      if (document.hidden) return;
      i = (i + 1) % slides.length;
      box.scrollTo({ left: i * box.clientWidth, behavior: "smooth" });
    }, 5000);
  }

  // -- station: sign-up buttons ----------------------------------------------------------------------
  function station() {
    var L = labels();
    $$("button[data-signup]").forEach(function (b) {
      b.addEventListener("click", function () {
        var li = b.closest("li"), note = $(".note", li);
        b.disabled = true;
        fetch("/api/v1/me/signups", {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ activity_id: Number(b.getAttribute("data-signup")) })
        }).then(function (r) {
          return r.json().then(function (json) { return { ok: r.ok, json: json }; });
        }).then(function (res) {
          if (res.ok) {
            note.className = "note"; note.textContent = L.signed_up; b.textContent = L.signed_up_button;
          } else {
            note.className = "note err"; note.textContent = (res.json.error && res.json.error.message) || L.failed;
            b.disabled = false;
          }
        }).catch(function () { note.className = "note err"; note.textContent = L.failed; b.disabled = false; });
      });
    });
  }

  // -- station: booking a slot (POST /api/v1/me/bookings) ------------------------------------------
  function booking() {
    var form = $("#book");
    if (!form) return;
    var L = labels();
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var note = $(".note", form), button = $("button", form), body = {
        station: form.getAttribute("data-station"),
        slot_start: form.elements.day.value + "T" + form.elements.hour.value + ":00"
      };
      if (form.elements.service.value) body.service_id = Number(form.elements.service.value);
      button.disabled = true;
      fetch("/api/v1/me/bookings", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify(body)
      }).then(function (r) {
        return r.json().then(function (json) { return { ok: r.ok, json: json }; });
      }).then(function (res) {
        note.className = res.ok ? "note" : "note err";
        note.textContent = res.ok ? form.getAttribute("data-ok").replace("{id}", res.json.id)
          : (res.json.error && res.json.error.message) || L.failed;
        button.disabled = false;
      }).catch(function () { note.className = "note err"; note.textContent = L.failed; button.disabled = false; });
    });
  }

  // -- me: the personal code, refreshed before it expires ------------------------------------------
  function me() {
    var img = $("#my-code");
    if (!img) return;
    var every = Number(img.getAttribute("data-refresh") || "240") * 1000;
    var lastUrl = null;
    setInterval(function () {
      fetch(img.getAttribute("data-src"), { credentials: "same-origin", cache: "no-store" }).then(function (r) {
        return r.ok ? r.blob() : null;
      }).then(function (blob) {
        if (!blob) return;
        var url = URL.createObjectURL(blob);
        img.src = url;
        img.setAttribute("data-refreshed", String(Date.now()));
        if (lastUrl) URL.revokeObjectURL(lastUrl);
        lastUrl = url;
      }).catch(function () {});
    }, every);
  }

  // -- kiosk: the rotating check-in code -------------------------------------------------------------
  function kiosk() {
    var img = $("#kiosk-qr"), name = $("#kiosk-name"), today = $("#kiosk-today"), wait = $("#kiosk-wait");
    var state = document.body.getAttribute("data-state");
    poll(function () { return state; }, KIOSK_POLL_MS, function (json) {
      name.textContent = json.name;
      today.textContent = json.today;
      if (json.window === null || json.window === undefined) { if (wait) wait.hidden = false; return; }
      if (wait) wait.hidden = true;
      if (img.getAttribute("data-window") !== String(json.window)) {
        img.src = json.image;
        img.setAttribute("data-window", String(json.window));
      }
    });
  }

  var pages = { home: home, station: function () { station(); booking(); }, me: me, kiosk: kiosk };
  if (pages[page]) pages[page]();
})();
