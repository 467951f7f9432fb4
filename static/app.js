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

  document.addEventListener("click", function (event) {
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
  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:load", function (event) { init(event.detail.elt); });
})();
