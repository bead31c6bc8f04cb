/* Fleet table: rows from the page (then /api/fleet every few seconds), client-side sort and
   filter. Device data reaches the DOM through textContent only. */
(function () {
  "use strict";
  var table = document.getElementById("fleet");
  if (!table) return;
  var body = table.tBodies[0];
  var filterEl = document.getElementById("fleet-filter");
  var statusEl = document.getElementById("fleet-status");
  var countEl = document.getElementById("fleet-count");
  var rows = JSON.parse(document.getElementById("fleet-data").textContent);
  var sortKey = "id", sortDir = 1, REFRESH_MS = 5000, failures = 0;

  // the alerts' unit convention: GiB from 1 GiB up, else MiB
  function gb(b) {
    if (b === null || b === undefined) return "";
    return Math.abs(b) >= 1073741824 ? (b / 1073741824).toFixed(1) + " GiB" : (b / 1048576).toFixed(0) + " MiB";
  }
  function pct(r) { return r === null || r === undefined ? "" : Math.round(r * 100) + "%"; }
  function ago(ts) {
    if (!ts) return "never";
    var s = Math.max(0, Date.now() / 1000 - ts);
    if (s < 90) return Math.round(s) + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    if (s < 172800) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }
  function sortValue(d, key) {
    switch (key) {
      case "ram_ratio": return d.ram_used && d.ram_total ? d.ram_used / d.ram_total : -1;
      case "hottest": return d.hottest ? d.hottest.celsius : -1;
      case "runtime_ratio": return d.runtime && d.runtime.ratio !== null ? d.runtime.ratio : -1;
      case "gpu_load": return d.gpu_load === null ? -1 : d.gpu_load;
      case "jetpack": return (d.jetpack || "") + " " + (d.l4t || "");
      case "last_seen": return d.last_seen || 0;
      case "alerts": return d.alerts;
      default: return String(d[key] || "").toLowerCase();
    }
  }
  // header names, shown beside each value when the table is stacked on a phone
  var LABELS = Array.prototype.map.call(table.tHead.rows[0].cells, function (th) { return th.textContent; });
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text === "" ? "—" : text;
    td.dataset.label = LABELS[tr.cells.length] || "";
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }
  function render() {
    var q = (filterEl.value || "").trim().toLowerCase();
    var shown = rows.filter(function (d) {
      if (!q) return true;
      return [d.id, d.board, d.status, d.jetpack, d.l4t, d.runtime ? d.runtime.runtime : ""].join(" ").toLowerCase().indexOf(q) >= 0;
    });
    shown.sort(function (a, b) {
      var x = sortValue(a, sortKey), y = sortValue(b, sortKey);
      return (x < y ? -1 : x > y ? 1 : 0) * sortDir || (a.id < b.id ? -1 : 1);
    });
    var frag = document.createDocumentFragment();
    shown.forEach(function (d) {
      var tr = document.createElement("tr");
      tr.dataset.device = d.id;
      tr.dataset.status = d.status;
      var first = document.createElement("td"), a = document.createElement("a");
      a.href = "/devices/" + encodeURIComponent(d.id) + "/";
      a.textContent = d.id;
      first.dataset.label = LABELS[0]; first.appendChild(a); tr.appendChild(first);
      var st = cell(tr, ""), badge = document.createElement("span");
      badge.className = "status status-" + d.status; badge.textContent = d.status; st.replaceChildren(badge);
      cell(tr, d.board || "?");
      cell(tr, [d.jetpack ? "JetPack " + d.jetpack : "", d.l4t ? "L4T " + d.l4t : ""].filter(Boolean).join(" · "));
      cell(tr, pct(d.gpu_load), "num");
      cell(tr, d.ram_used ? gb(d.ram_used) + (d.ram_total ? " / " + gb(d.ram_total) : "") : "", "num");
      cell(tr, d.hottest ? d.hottest.celsius.toFixed(1) + " °C (" + d.hottest.zone + ")" : "", "num");
      var rt = cell(tr, d.runtime ? d.runtime.runtime + " " + gb(d.runtime.bytes) + (d.runtime.ceiling ? " / " + gb(d.runtime.ceiling) + " (" + pct(d.runtime.ratio) + ")" : "") : "");
      if (d.runtime && d.runtime.ratio >= 1) rt.className = "crit"; else if (d.runtime && d.runtime.ratio >= 0.9) rt.className = "warn";
      var al = cell(tr, d.alerts > 0 ? "" : String(d.alerts), "num");
      if (d.alerts > 0) {
        al.className = "num crit";
        var link = document.createElement("a");
        link.href = "/alerts/?device=" + encodeURIComponent(d.id);
        link.textContent = String(d.alerts);
        link.title = "The firing alerts of " + d.id;
        al.replaceChildren(link);
      }
      cell(tr, ago(d.last_seen), "ts");
      frag.appendChild(tr);
    });
    body.replaceChildren(frag);
    countEl.textContent = shown.length + " of " + rows.length + " devices";
    document.getElementById("fleet-empty").hidden = rows.length > 0;
    table.dataset.rows = String(shown.length);
  }
  table.tHead.addEventListener("click", function (e) {
    var th = e.target.closest("th[data-sort]");
    if (!th) return;
    var key = th.dataset.sort;
    sortDir = key === sortKey ? -sortDir : 1;
    sortKey = key;
    table.querySelectorAll("th[data-sort]").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
    render();
  });
  filterEl.addEventListener("input", render);
  function refresh() {
    fetch("/api/fleet", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (data) {
        rows = data.devices; failures = 0;
        statusEl.textContent = "live"; statusEl.className = "status status-live";
        table.dataset.refreshes = String(parseInt(table.dataset.refreshes || "0", 10) + 1);
        render();
      })
      .catch(function () {
        failures++;
        statusEl.textContent = "reconnecting"; statusEl.className = "status status-down";
      })
      .then(function () { setTimeout(refresh, Math.min(REFRESH_MS * (1 + failures), 30000)); });
  }
  render();
  statusEl.textContent = "live"; statusEl.className = "status status-live";
  setTimeout(refresh, REFRESH_MS);
})();
