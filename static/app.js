// Small progressive enhancements; the pages work without them. No inline scripts (CSP).
(function () {
  "use strict";

  // Live rows poll every 2 s; skip the request while the tab is hidden (no eval needed).
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    if (document.visibilityState === "hidden" && elt && elt.hasAttribute("data-poll")) {
      event.preventDefault();
    }
  });

  // One error path for every htmx request: a 4xx/5xx answer (422 is swapped next to the
  // fields instead) or no answer at all shows in the page's alert region, moved next to the
  // action. A 401 never gets here: its HX-Redirect sends the operator to log in and back.
  function alertRegion() {
    return document.getElementById("action-alert");
  }
  function showAlert(elt, message) {
    var region = alertRegion();
    if (!region) return;
    var table = elt && elt.closest ? elt.closest("table") : null;
    var anchor = table || (elt && elt.closest ? elt.closest("form, section") : null);
    if (anchor && anchor.parentNode && anchor !== region) {
      anchor.parentNode.insertBefore(region, table ? anchor : anchor.nextSibling);
    }
    var text = region.querySelector(".alert-text");
    text.textContent = message;
    region.hidden = false;
    var notice = document.getElementById("notice");
    if (notice) notice.innerHTML = "";  // an earlier success must not stand for this failure
  }
  function messageOf(xhr) {
    var fallback = "The server answered " + xhr.status + (xhr.statusText ? " " + xhr.statusText : "") +
      ". Nothing was changed.";
    if (!xhr.responseText) return fallback;
    var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
    var found = doc.querySelector(".error-text, [role=alert], main p");
    var text = found ? found.textContent.trim() : "";
    return text ? text + " (" + xhr.status + ")" : fallback;
  }
  document.addEventListener("htmx:responseError", function (event) {
    showAlert(event.detail.elt, messageOf(event.detail.xhr));
  });
  document.addEventListener("htmx:sendError", function (event) {
    showAlert(event.detail.elt, "Could not reach the server: nothing was changed. Check the connection and try again.");
  });
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    var region = alertRegion();
    if (region && !event.defaultPrevented && !(elt && elt.hasAttribute("data-poll"))) region.hidden = true;
  });

  // Focus follows what opened: the first invalid field of a re-shown form, else the first
  // field of a panel or row form that just appeared. Escape closes it again.
  document.addEventListener("htmx:afterSettle", function (event) {
    var root = event.detail.elt;
    if (!root || !root.querySelector) return;
    var target = root.querySelector("[aria-invalid=true]") ||
      (root.querySelector("form [data-cancel]") ? root.querySelector("form input:not([type=hidden]), form select") : null);
    if (target && root.contains(target)) target.focus();
  });
  // A result shown at the top of the page is brought into view (the button may be far below).
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "notice" && target.scrollIntoView) target.scrollIntoView({block: "nearest"});
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || !event.target.closest) return;
    var form = event.target.closest("form");
    var cancel = form && form.querySelector("[data-cancel]");
    if (cancel) {
      event.preventDefault();
      cancel.click();
      var opener = document.querySelector(".page-head button.primary");
      if (opener && cancel.hasAttribute("data-clear")) opener.focus();
    }
  });

  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-dismiss-alert]")) {
      alertRegion().hidden = true;
      return;
    }
    var copy = event.target.closest("[data-copy]");
    if (copy) {
      var source = document.querySelector(copy.getAttribute("data-copy"));
      if (source && navigator.clipboard) {
        navigator.clipboard.writeText(source.textContent.trim()).then(function () {
          copy.textContent = "Copied";
        }, function () {
          copy.textContent = "Select and copy";
        });
      }
      return;
    }
    var clear = event.target.closest("[data-clear]");
    if (clear) {
      var target = document.querySelector(clear.getAttribute("data-clear"));
      if (target) {
        event.preventDefault();
        target.innerHTML = "";
      }
    }
  });

  // "All <Category> events" also ticks and locks that category's single events.
  function syncGroup(box) {
    var group = box.closest(".event-group");
    if (!group) return;
    group.querySelectorAll("input[name=event_types]").forEach(function (item) {
      item.disabled = box.checked;
      if (box.checked) item.checked = false;
    });
  }
  document.addEventListener("change", function (event) {
    if (event.target.matches("input[name=all_events]")) syncGroup(event.target);
  });
  function init(root) {
    root.querySelectorAll("input[name=all_events]:checked").forEach(syncGroup);
  }
  // A declined confirm on a select (the role change) puts the select back to the saved value;
  // otherwise the row would show a role the server never set.
  document.addEventListener("htmx:confirm", function (event) {
    var question = event.detail.question;
    var form = event.detail.elt;
    var select = form && form.querySelector ? form.querySelector("select") : null;
    if (!question || !select) return;
    event.preventDefault();
    if (window.confirm(question)) {
      event.detail.issueRequest(true);
      return;
    }
    select.querySelectorAll("option").forEach(function (option) { option.selected = option.defaultSelected; });
  });
  // A whole page re-shown with errors (no htmx) puts focus on the first field marked invalid.
  function focusFirstError() {
    var error = document.querySelector(".field .field-error");
    var field = error && error.parentNode.querySelector("input:not([type=hidden]), select, textarea");
    if (field) field.focus();
  }
  document.addEventListener("DOMContentLoaded", function () { init(document); focusFirstError(); });
  document.addEventListener("htmx:load", function (event) { init(event.detail.elt); });
})();
