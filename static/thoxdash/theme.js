/* Dark / light: the saved choice is applied before the page paints (this file loads in <head>);
   the toggle button is wired once the DOM exists. */
(function () {
  "use strict";
  var saved = null;
  try { saved = localStorage.getItem("thoxdash-theme"); } catch (e) { saved = null; }
  if (saved === "dark" || saved === "light") document.documentElement.dataset.theme = saved;
  function wire() {
    var button = document.getElementById("theme-toggle");
    if (!button) return;
    button.addEventListener("click", function () {
      var dark = document.documentElement.dataset.theme === "dark" ||
        (!document.documentElement.dataset.theme && matchMedia("(prefers-color-scheme: dark)").matches);
      var next = dark ? "light" : "dark";
      document.documentElement.dataset.theme = next;
      try { localStorage.setItem("thoxdash-theme", next); } catch (e) { /* private mode */ }
      window.dispatchEvent(new Event("thoxdash-theme"));
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", wire); else wire();
})();
