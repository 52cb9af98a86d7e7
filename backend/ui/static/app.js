// rtserve UI: the little behaviour htmx does not cover. No inline scripts (the pages' CSP forbids them).
(function () {
  "use strict";

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-HTTP hosts other than localhost are not secure contexts: fall back to a selection copy.
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    const ok = document.execCommand("copy");
    document.body.removeChild(area);
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    copyText(button.getAttribute("data-copy")).then(
      function () { flashLabel(button, "Copied"); },
      function () { flashLabel(button, "Select and copy"); }
    );
  });

  function flashLabel(button, text) {
    const before = button.textContent;
    button.textContent = text;
    button.setAttribute("data-copied", "true");
    setTimeout(function () { button.textContent = before; button.removeAttribute("data-copied"); }, 1500);
  }

  document.addEventListener("submit", function (event) {
    const form = event.target;
    const question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  document.addEventListener("change", function (event) {
    if (event.target.matches("select[data-autosubmit]")) event.target.form.submit();
  });

  function scrollLogs(root) {
    (root || document).querySelectorAll("pre.log").forEach(function (pre) { pre.scrollTop = pre.scrollHeight; });
  }
  document.addEventListener("DOMContentLoaded", function () { scrollLogs(); });
  document.addEventListener("htmx:afterSwap", function (event) { scrollLogs(event.detail.elt.parentNode || document); });

  // The backend could not be reached at all (stopped, network): say so instead of failing silently.
  document.addEventListener("htmx:sendError", function () {
    let banner = document.getElementById("offline-banner");
    if (!banner) {
      banner = document.createElement("div");
      banner.id = "offline-banner";
      banner.className = "flash flash-error";
      banner.setAttribute("role", "alert");
      banner.textContent = "The rtserve backend is not answering. Check that it is running; this page retries by itself.";
      document.querySelector("main").prepend(banner);
    }
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    const banner = document.getElementById("offline-banner");
    if (banner && event.detail.xhr && event.detail.xhr.status) banner.remove();
  });
})();
