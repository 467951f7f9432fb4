// The live pages: new delivery rows, the Webhook Management rows, versioned fragments.
// Polling goes through htmx (`every` triggers, paused by app.js while the tab is hidden); this
// file sends each poll's cursor or version and puts the answers into the page. No inline
// scripts, no eval (CSP).
(function () {
  "use strict";

  var AT_TOP = 80;  // px: scrolled further than this, new rows wait behind "N new"
  var MAX_ROWS = 200;  // a table this long stops growing by itself: "N new" instead

  // Every poll says what it already has: a feed its cursor, a fragment its version, the
  // Webhook Management feed also how many rows it shows.
  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    if (!elt || !elt.hasAttribute) return;
    var params = event.detail.parameters;
    if (elt.hasAttribute("data-live-after")) params.after = elt.getAttribute("data-live-after");
    if (elt.hasAttribute("data-live-version")) params.version = elt.getAttribute("data-live-version");
    if (elt.hasAttribute("data-live-rows")) {
      var tbody = document.querySelector(elt.getAttribute("data-live-rows"));
      params.shown = tbody ? tbody.querySelectorAll("tr[id^=endpoint-]").length : 0;
    }
  });

  function parse(html) {
    var holder = document.createElement("template");
    holder.innerHTML = html;
    return holder.content;
  }
  function holdsFocusOrForm(row) {
    // An open form (edit, disable) or anything the operator is typing in is never replaced.
    return row.classList.contains("editing") || row.hasAttribute("data-live-hold") ||
      (document.activeElement && row !== document.body && row.contains(document.activeElement) &&
        document.activeElement.matches("input, select, textarea"));
  }

  // ---- New delivery rows -------------------------------------------------------------
  function deliveryRowCount(tbody) {
    return tbody.querySelectorAll("tr[id^=delivery-]").length;
  }
  function waits(feed, tbody) {
    return feed.hasAttribute("data-live-paged") || window.scrollY > AT_TOP ||
      deliveryRowCount(tbody) >= MAX_ROWS;
  }
  function showNew(feed, rows) {
    var tbody = document.querySelector(feed.getAttribute("data-live-target"));
    if (!tbody) return;
    var empty = tbody.querySelector("tr.empty");
    if (empty && rows.length) empty.remove();
    rows.forEach(function (row) {  // oldest first: each goes on top, so the newest ends first
      tbody.insertBefore(row, tbody.firstElementChild);
      row.classList.add("arrived");
      if (window.htmx) window.htmx.process(row);
    });
    countShown(feed, rows.length);
  }
  // The monitor's "N deliveries match" counts the rows the feed brought (they match the filters).
  function countShown(feed, added) {
    var results = feed.closest("#delivery-results");
    var count = results && results.querySelector(".result-count[data-total]");
    if (!count || !added) return;
    var total = parseInt(count.getAttribute("data-total"), 10) + added;
    count.setAttribute("data-total", String(total));
    count.textContent = total.toLocaleString("en-US") + (total === 1 ? " delivery matches." : " deliveries match.");
  }
  function control(feed) {
    return document.querySelector("[data-live-show='#" + feed.id + "']");
  }
  function updateControl(feed) {
    var button = control(feed);
    if (!button) return;
    var n = (feed.liveWaiting || []).length;
    button.hidden = n === 0;
    button.textContent = n + " new deliver" + (n === 1 ? "y" : "ies") + ": show";
  }
  function takeFeed(feed, xhr) {
    var cursor = xhr.getResponseHeader("X-Live-Cursor");
    if (cursor) feed.setAttribute("data-live-after", cursor);
    if (xhr.status !== 200) return;
    var tbody = document.querySelector(feed.getAttribute("data-live-target"));
    if (!tbody) return;
    var waiting = feed.liveWaiting || [];
    var fresh = [];
    Array.prototype.forEach.call(parse(xhr.responseText).querySelectorAll("tr[id^=delivery-]"), function (row) {
      var shown = document.getElementById(row.id);
      if (shown) {  // re-sent while its commit settled: refresh it in place
        if (!holdsFocusOrForm(shown) && !shown.hasAttribute("data-poll")) {
          shown.replaceWith(row);
          if (window.htmx) window.htmx.process(row);
        }
        return;
      }
      var i = waiting.findIndex(function (w) { return w.id === row.id; });
      if (i >= 0) waiting[i] = row; else fresh.push(row);
    });
    if (!waiting.length && !waits(feed, tbody)) {
      showNew(feed, fresh);
    } else {
      feed.liveWaiting = waiting.concat(fresh);
      updateControl(feed);
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-live-show]");
    if (button) {
      var feed = document.querySelector(button.getAttribute("data-live-show"));
      if (!feed) return;
      showNew(feed, feed.liveWaiting || []);
      feed.liveWaiting = [];
      updateControl(feed);
      var table = button.closest(".live-new-bar");
      if (table && table.scrollIntoView) table.scrollIntoView({block: "start"});
      return;
    }
    // After "Load more" the operator reads older rows: new ones wait behind the control.
    if (event.target.closest && event.target.closest("#load-more")) {
      document.querySelectorAll("[data-live-after]").forEach(function (feed) {
        feed.setAttribute("data-live-paged", "");
      });
    }
  });

  // ---- Webhook Management rows ---------------------------------------------------------
  function mergeRows(tbody, content) {
    var fresh = Array.prototype.slice.call(content.querySelectorAll("tr"));
    var keep = {};
    var previous = null;
    fresh.forEach(function (row) {
      if (row.id) keep[row.id] = true;
      var current = row.id ? document.getElementById(row.id) : tbody.querySelector("tr.empty");
      var node = current;
      if (current && holdsFocusOrForm(current)) {
        previous = current;  // never moved either: moving a node drops the focus in it
        return;
      }
      if (current && current.outerHTML !== row.outerHTML) {
        current.replaceWith(row);
        node = row;
        if (window.htmx) window.htmx.process(row);
      } else if (!current) {
        node = row;
        if (window.htmx) window.htmx.process(row);
      }
      var place = previous ? previous.nextElementSibling : tbody.firstElementChild;
      if (place !== node) tbody.insertBefore(node, place);
      previous = node;
    });
    Array.prototype.slice.call(tbody.children).forEach(function (row) {
      var known = row.id ? keep[row.id] : row.classList.contains("empty") && fresh.some(function (r) { return r.classList.contains("empty"); });
      if (!known && !holdsFocusOrForm(row)) row.remove();
    });
  }
  function takeRows(feed, xhr) {
    var version = xhr.getResponseHeader("X-Live-Version");
    if (xhr.status !== 200) return;
    var content = parse(xhr.responseText);
    var glance = document.querySelector(feed.getAttribute("data-live-glance"));
    var freshGlance = content.querySelector(feed.getAttribute("data-live-glance"));
    if (glance && freshGlance && glance.innerHTML !== freshGlance.innerHTML) glance.replaceWith(freshGlance);
    var tbody = document.querySelector(feed.getAttribute("data-live-rows"));
    var rows = content.querySelector("template[data-live-rows]");
    if (tbody && rows) mergeRows(tbody, rows.content);
    if (version) feed.setAttribute("data-live-version", version);
  }

  document.addEventListener("htmx:afterRequest", function (event) {
    var feed = event.detail.elt;
    var xhr = event.detail.xhr;
    if (!feed || !feed.hasAttribute || !xhr) return;
    if (feed.hasAttribute("data-live-after")) takeFeed(feed, xhr);
    else if (feed.hasAttribute("data-live-rows")) takeRows(feed, xhr);
  });
})();
