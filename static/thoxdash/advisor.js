/* Advisor page: "Apply…" opens the confirmation (old -> new per step) in a dialog instead of a new
   page, and while a request is pending the page refreshes itself until the agent has answered. */
(function () {
  "use strict";
  var dialog = document.getElementById("confirm-dialog");
  document.querySelectorAll("a.confirm-link").forEach(function (link) {
    link.addEventListener("click", function (e) {
      if (link.getAttribute("aria-disabled") === "true") { e.preventDefault(); return; }
      if (!dialog || typeof dialog.showModal !== "function") return; // plain link: the confirm page
      e.preventDefault();
      fetch(link.href + "&partial=1", { credentials: "same-origin" })
        .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.text(); })
        .then(function (html) {
          // same-origin HTML rendered by our own template (every device string escaped there)
          var doc = new DOMParser().parseFromString(html, "text/html");
          dialog.replaceChildren.apply(dialog, Array.prototype.slice.call(doc.body.childNodes));
          dialog.querySelectorAll("[data-close]").forEach(function (c) {
            c.addEventListener("click", function (ev) { ev.preventDefault(); dialog.close(); });
          });
          if (window.thoxdashLocalTimes) window.thoxdashLocalTimes(dialog);
          dialog.showModal();
        })
        .catch(function () { location.href = link.href; });
    });
  });
  var audit = document.getElementById("audit");
  if (audit && audit.dataset.pending === "1") {
    var tries = 0;
    var timer = setInterval(function () {
      if (++tries > 120 || (dialog && dialog.open)) { if (tries > 120) clearInterval(timer); return; }
      var ids = Array.prototype.map.call(audit.querySelectorAll('tr[data-state="pending"]'), function (tr) { return tr.dataset.request; });
      Promise.all(ids.map(function (id) {
        return fetch("/api/actions/" + encodeURIComponent(id), { credentials: "same-origin", cache: "no-store" })
          .then(function (r) { return r.ok ? r.json() : { state: "pending" }; });
      })).then(function (rows) {
        if (rows.some(function (row) { return row.state !== "pending"; })) location.reload();
      });
    }, 1000);
  }
})();
