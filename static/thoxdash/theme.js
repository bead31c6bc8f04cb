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
  // One time zone everywhere, the browser's: <time datetime="ISO"> elements rendered by the server
  // (in UTC, as the no-JS fallback) are rewritten in local time, and the zone is named in the top bar.
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function localText(d) {
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }
  function zoneName() {
    var name = "";
    try { name = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { name = ""; }
    var off = -new Date().getTimezoneOffset(), sign = off < 0 ? "−" : "+";
    off = Math.abs(off);
    var utc = "UTC" + sign + pad(Math.floor(off / 60)) + ":" + pad(off % 60);
    return name && name !== "UTC" ? name + " (" + utc + ")" : utc;
  }
  function localTimes(rootEl) {
    (rootEl || document).querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d.getTime())) return;
      el.textContent = localText(d);
      el.title = d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
    });
    var tz = document.getElementById("tz");
    if (tz) tz.textContent = "times: " + zoneName();
  }
  window.thoxdashLocalTimes = localTimes;
  window.thoxdashZone = zoneName;
  // after the current task: the device page draws its first chart on DOMContentLoaded, before this
  function ready() { wire(); setTimeout(function () { localTimes(); }, 0); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready); else ready();
})();
