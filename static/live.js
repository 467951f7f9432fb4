// The live pages: new delivery rows, the Webhook Management rows, versioned fragments.
// Polling goes through htmx (`every` triggers, paused by app.js while the tab is hidden); this
// file sends each poll's cursor or version and puts the answers into the page. No inline
// scripts, no eval (CSP).
(function () {
  "use strict";

  var AT_TOP = 80;  // px: scrolled further than this, new rows wait behind "N new"
  var MAX_ROWS = 200;  // a table this long stops growing by itself: "N new" instead

  // Every poll says what it already has: a feed its cursor, the rows past it and the rows in
  // flight it shows; a fragment its version; the Webhook Management feed how many rows it shows.
  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    if (!elt || !elt.hasAttribute) return;
    var params = event.detail.parameters;
    if (elt.hasAttribute("data-live-after")) feedParams(elt, params);
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
    // Nor a row whose button is waiting for its answer: that answer's target is this row.
    return row.classList.contains("editing") || row.hasAttribute("data-live-hold") ||
      row.classList.contains("htmx-request") || !!row.querySelector(".htmx-request") ||
      (document.activeElement && row !== document.body && row.contains(document.activeElement) &&
        document.activeElement.matches("input, select, textarea"));
  }

  // ---- New delivery rows -------------------------------------------------------------
  // At the top of the page the feed brings the new rows themselves; scrolled down, after
  // "Load more" or with MAX_ROWS rows shown it asks only how many (count=1) and the "N new"
  // control says so; a click brings them (or the newest page again, when they are many).
  function feedBody(feed) {
    return document.querySelector(feed.getAttribute("data-live-target"));
  }
  function rowId(row) {
    return parseInt(row.id.slice("delivery-".length), 10);
  }
  function waits(feed, tbody) {
    return feed.hasAttribute("data-live-paged") || window.scrollY > AT_TOP ||
      tbody.querySelectorAll("tr[id^=delivery-]").length >= MAX_ROWS;
  }
  function feedParams(feed, params) {
    var tbody = feedBody(feed);
    if (!tbody) return;
    var after = parseInt(feed.getAttribute("data-live-after"), 10);
    params.after = String(after);
    var watch = [];
    var have = [];
    tbody.querySelectorAll("tr[id^=delivery-]").forEach(function (row) {
      if (row.hasAttribute("data-live-watch")) watch.push(rowId(row) + "." + row.getAttribute("data-live-watch"));
      if (rowId(row) > after) have.push(rowId(row));  // sent again while its commit settles
    });
    if (watch.length) params.watch = watch.slice(0, 200).join(",");
    feed.liveMode = feed.liveShow || (waits(feed, tbody) ? "count" : "rows");
    feed.liveShow = null;
    if (feed.liveMode === "count") params.count = "1";
    else if (feed.liveMode === "newest") params.newest = "1";
    // Rows shown but not yet behind the cursor: not sent again, and not counted as "N new".
    if (feed.liveMode !== "newest" && have.length) params.have = have.slice(0, 200).join(",");
  }
  function showNew(feed, rows) {
    var tbody = feedBody(feed);
    var empty = tbody.querySelector("tr.empty");
    if (empty && rows.length) empty.remove();
    rows.forEach(function (row) {  // oldest first: each goes on top, so the newest ends first
      tbody.insertBefore(row, tbody.firstElementChild);
      row.classList.add("arrived");
      if (window.htmx) window.htmx.process(row);
    });
    countShown(feed, rows.length);
  }
  // The monitor's "N deliveries match" counts the rows the feed added (they match the filters).
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
  function setWaiting(feed, n) {
    feed.liveWaiting = n;
    var button = control(feed);
    if (!button) return;
    button.hidden = n === 0;
    var shown = n >= 1000 ? "1,000+" : n.toLocaleString("en-US");
    button.textContent = shown + " new deliver" + (n === 1 ? "y" : "ies") + ": show";
  }
  function takeFeed(feed, xhr) {
    var mode = feed.liveMode;
    var tbody = feedBody(feed);
    // A poll sent at the top that is answered after the operator scrolled down or pressed "Load
    // more" brings rows that would now shift the page under them: they wait instead. The cursor
    // stays where it was, so the next poll (count mode) counts them behind "N new".
    var late = mode === "rows" && tbody && waits(feed, tbody);
    var cursor = xhr.getResponseHeader("X-Live-Cursor");
    if (cursor && !late) feed.setAttribute("data-live-after", cursor);
    if (!tbody) return;
    if (xhr.getResponseHeader("X-Live-Reset")) {  // the newest page again, scrolled to it
      countShown(feed, feed.liveWaiting || 0);
      tbody.innerHTML = xhr.responseText;
      if (window.htmx) window.htmx.process(tbody);
      feed.removeAttribute("data-live-paged");
      setWaiting(feed, 0);
      var table = tbody.closest("table");
      if (table && table.scrollIntoView) table.scrollIntoView({block: "start"});
      return;
    }
    var counted = xhr.getResponseHeader("X-Live-New");
    if (mode === "count") setWaiting(feed, counted ? parseInt(counted, 10) : 0);
    if (xhr.status !== 200) return;
    var fresh = [];
    Array.prototype.forEach.call(parse(xhr.responseText).querySelectorAll("tr[id^=delivery-]"), function (row) {
      var shown = document.getElementById(row.id);
      if (!shown) {
        if (!late) fresh.push(row);
      } else if (!holdsFocusOrForm(shown) && !shown.hasAttribute("data-poll")) {
        shown.replaceWith(row);  // a watched row that changed, in place
        if (window.htmx) window.htmx.process(row);
      }
    });
    if (fresh.length) {
      showNew(feed, fresh);
      setWaiting(feed, 0);
      if (mode === "shown") {
        var head = tbody.closest("table");
        if (head && head.scrollIntoView) head.scrollIntoView({block: "start"});
      }
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-live-show]");
    if (button) {
      var feed = document.querySelector(button.getAttribute("data-live-show"));
      if (!feed || !window.htmx) return;
      var tbody = feedBody(feed);
      var many = (feed.liveWaiting || 0) > 50 || tbody.querySelectorAll("tr[id^=delivery-]").length >= MAX_ROWS;
      feed.liveShow = many ? "newest" : "shown";
      window.htmx.trigger(feed, "live-show");
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
