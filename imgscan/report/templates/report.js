/* imgscan report: sorting, a text filter and folding. The page reads the same
   without this script; it changes nothing but the view. */
(function () {
  "use strict";
  var table = document.getElementById("image-table");
  if (!table) { return; }
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);

  /* Sort by a column: numbers by their data-v value, text otherwise. */
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
    var button = document.createElement("button");
    button.type = "button";
    button.textContent = th.textContent;
    th.textContent = "";
    th.appendChild(button);
    button.addEventListener("click", function () {
      rows.forEach(function (tr) { fold(tr, false); });
      var up = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) {
        other.removeAttribute("aria-sort");
      });
      th.setAttribute("aria-sort", up ? "ascending" : "descending");
      var keyed = rows.map(function (tr) {
        var cell = tr.cells[col];
        var v = cell.getAttribute("data-v");
        return [v === null ? cell.textContent : (v === "" ? -1 : Number(v)), tr];
      });
      keyed.sort(function (a, b) {
        var x = a[0], y = b[0];
        var c = typeof x === "number" && typeof y === "number" ? x - y
          : String(x).localeCompare(String(y));
        return up ? c : -c;
      });
      var frag = document.createDocumentFragment();
      keyed.forEach(function (k) { frag.appendChild(k[1]); });
      body.appendChild(frag);
    });
  });

  /* Filter rows by text (path, format, OS, verdict, rules), and fold or unfold all. */
  var tools = document.getElementById("image-tools");
  var box = document.createElement("input");
  box.type = "search";
  box.placeholder = "Filter: path, format, OS, verdict, rule";
  box.setAttribute("aria-label", "Filter the images");
  var timer = 0;
  box.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      var q = box.value.toLowerCase();
      rows.forEach(function (tr) {
        var text = tr.getAttribute("data-text");
        if (text === null) {
          text = Array.prototype.slice.call(tr.cells, 0, -1).map(function (c) {
            return c.textContent;
          }).join(" ").toLowerCase();
          tr.setAttribute("data-text", text);
        }
        tr.hidden = q !== "" && text.indexOf(q) < 0;
      });
    }, 120);
  });
  tools.appendChild(box);
  [["Unfold all", true], ["Fold all", false]].forEach(function (b) {
    var button = document.createElement("button");
    button.type = "button";
    button.textContent = b[0];
    button.addEventListener("click", function () {
      rows.forEach(function (tr) {
        if (!tr.hidden && tr.offsetParent !== null) { fold(tr, b[1]); }
      });
    });
    tools.appendChild(button);
  });

  /* An image's facts, findings and rules are shared by its copies and written once
     (section "Image details"); a row's "detail" link unfolds them under the row
     (a copy), and folds them again. Without this script the link leads there. */
  function fold(tr, open) {
    var link = tr.querySelector("a.shared");
    var next = tr.nextElementSibling;
    var unfolded = next !== null && next.classList.contains("unfolded");
    if (!link || unfolded === open) { return; }
    link.setAttribute("aria-expanded", String(open));
    if (!open) { next.parentNode.removeChild(next); return; }
    var shared = document.getElementById(link.getAttribute("href").slice(1));
    var row = document.createElement("tr");
    row.className = "unfolded";
    var cell = row.insertCell(0);
    cell.colSpan = tr.cells.length;
    var copy = shared.cloneNode(true);
    copy.removeAttribute("id");
    cell.appendChild(copy);
    tr.parentNode.insertBefore(row, tr.nextSibling);
  }
  body.addEventListener("click", function (e) {
    var link = e.target.closest && e.target.closest("a.shared");
    if (!link) { return; }
    e.preventDefault();
    var tr = link.closest("tr");
    var next = tr.nextElementSibling;
    fold(tr, !(next !== null && next.classList.contains("unfolded")));
  });
}());
